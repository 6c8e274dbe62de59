"""An example settings class, for trying `as-config validate` and `as-config show`.

From this folder:

    uv run as-config validate bench.yaml --schema example_settings:BenchSettings
    uv run as-config show bench.yaml --schema example_settings:BenchSettings --profile ci
    AS_EXAMPLE__STORE__RESULTS_DIR=/tmp/results \
        uv run as-config show bench.yaml --schema example_settings:BenchSettings
"""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from as_config import AsSettings, ConfigSection


class Store(ConfigSection):
    results_dir: str = "results"
    keep_last: int = Field(default=100, ge=1)


class BenchSettings(AsSettings):
    model_config = SettingsConfigDict(env_prefix="AS_EXAMPLE__")

    workloads: list[str] = Field(default_factory=lambda: ["mlp"])
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 32])
    max_time_s: float = Field(default=5.0, gt=0)
    upload_token: SecretStr = SecretStr("")
    store: Store = Store()
