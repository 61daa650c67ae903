"""Chaos runs (`make chaos`): the pipeline under API faults, crashes and bad data, compared with a clean run."""
