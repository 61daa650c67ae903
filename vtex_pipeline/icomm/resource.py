"""Dagster resource for icomm: the key arrives as an `EnvVar`, so the UI shows its name, never its value."""

from __future__ import annotations

import dagster as dg

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.icomm.client import CLIENT_TUNING, IcommClient
from vtex_pipeline.icomm.settings import IcommSettings


class IcommResource(dg.ConfigurableResource):
    """Builds a paced, retrying icomm client for one profile."""

    base_url: str = "https://api.icommarketing.com"
    api_key: str
    profile_key: str = ""
    auth_scheme: str = "basic"
    timeout: float = 60.0
    max_attempts: int = 5
    requests_per_second: float = 2.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0

    def make_client(self) -> IcommClient:
        if not self.profile_key:
            raise dg.Failure("ICOMM_PROFILE_KEY is not set: the export needs the target icomm profile")
        if self.auth_scheme not in ("basic", "raw"):
            raise dg.Failure(f"icomm auth_scheme must be 'basic' or 'raw', got {self.auth_scheme!r}")
        # The resource carries all the tuning but retry_after_max (the client's default applies).
        tuning = {name: getattr(self, name) for name in CLIENT_TUNING if name in IcommResource.model_fields}
        return IcommClient(
            self.base_url,
            self.api_key,
            self.profile_key,
            self.auth_scheme,  # type: ignore[arg-type]
            **tuning,
        )


def icomm_resource(settings: IcommSettings) -> IcommResource:
    """The resource for `settings`: every field but the key is the setting of the same name."""
    shared = IcommResource.model_fields.keys() - {"api_key"}
    return IcommResource(api_key=dg.EnvVar(settings.api_key_env), **settings.model_dump(include=shared))


def resources_for_icomm(
    cfg: IntegrationConfig, settings: IcommSettings
) -> dict[str, dg.ConfigurableResource]:
    """`{f"{cfg.name}_icomm": IcommResource}` to merge into the integration's resources."""
    return {cfg.resource_key("icomm"): icomm_resource(settings)}
