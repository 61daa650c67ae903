"""Customer profile: the SQL of `sql/staging`, `sql/intermediate` and `sql/marts` run as of a date."""

from vtex_pipeline.profile.compute import PROFILE_COLUMNS, compute_profile
from vtex_pipeline.profile.settings import ProfileSettings

__all__ = ["PROFILE_COLUMNS", "ProfileSettings", "compute_profile"]
