"""Typed configuration: pydantic v2 models loaded from YAML, ``--set a.b=c`` overrides, a stable hash.

A bad key or value fails before any work starts, naming the file, the key and what is allowed.
The defaults of these models are the embedded default config; ``configs/local.yaml`` spells them out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Literal, Optional

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "configs" / "local.yaml"


from raylib.configbase import ConfigError, Section  # noqa: E402  (rooms define their own sections)
from raylib.iterate_config import IterateSection  # noqa: E402
from raylib.models.config import GenerationSection, ModelSection  # noqa: E402
from raylib.search.config import SearchSection  # noqa: E402
from raylib.train.config import EBMSection, SFTSection  # noqa: E402


class RunSection(Section):
    name: str = Field("local", description="run name: outputs go to <root>/<name>/")
    root: str = Field("runs", description="directory holding all runs")
    seed: int = 0


class RaySection(Section):
    address: Optional[str] = Field(None, description="null: start local Ray; 'auto' or ray://...: join a cluster")
    num_cpus: Optional[int] = Field(None, ge=1, description="CPUs for a local Ray (null: all)")
    namespace: str = "rayprover"
    dashboard: bool = Field(True, description="start the dashboard with a local Ray (Ray Train needs its state API)")


class LeanReplSection(Section):
    command: list[str] = Field(default_factory=lambda: ["lake", "exe", "repl"], min_length=1)
    cwd: Optional[str] = Field(None, description="working directory: the Lean project holding the REPL")
    header: str = Field("", description="Lean commands run once per process (imports); empty: none sent")


class BuiltinSection(Section):
    faults: bool = Field(False, description="enable fault-injection tactics (tests only)")


class LeanDojoSection(Section):
    repo: str = Field("", description="git URL of a traced Lean repository")
    commit: str = ""
    timeout_s: int = Field(600, ge=1)


class FilterSection(Section):
    deny: Optional[list[str]] = Field(None, description="deny list replacing the default (null: default)")
    extra_deny: list[str] = Field(default_factory=list, description="words denied on top of the list")
    max_chars: int = Field(2000, ge=1)


class EnvSection(Section):
    backend: Literal["builtin", "lean_repl", "leandojo"] = "builtin"
    timeout_s: float = Field(10.0, gt=0, description="per-request timeout; the process is killed past it")
    startup_timeout_s: float = Field(600.0, gt=0, description="timeout for the header command (imports)")
    verify_timeout_s: float = Field(120.0, gt=0, description="timeout for a whole-proof check")
    memory_limit_gb: Optional[float] = Field(8.0, gt=0, description="RLIMIT_AS cap of the process; null: none")
    max_requests: int = Field(2000, ge=1, description="restart the process after this many requests")
    recycle_states: int = Field(20000, ge=1, description="recycle the process once no search holds it and "
                                "it has made this many proof states")
    allowed_axioms: list[str] = Field(default_factory=lambda: ["propext", "Classical.choice", "Quot.sound"],
                                      description="axioms a whole proof may depend on (#print axioms)")
    lean_repl: LeanReplSection = LeanReplSection()
    builtin: BuiltinSection = BuiltinSection()
    leandojo: LeanDojoSection = LeanDojoSection()
    filter: FilterSection = FilterSection()


class TheoremsSection(Section):
    source: str = Field("builtin:generated", description="a JSONL file, or builtin:textbook / builtin:generated")
    split: Optional[Literal["train", "valid", "test"]] = Field("valid", description="keep only this split; null: all")
    limit: Optional[int] = Field(None, ge=1)
    n: int = Field(1000, ge=1, description="how many theorems builtin:generated makes")
    seed: int = 0

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v.startswith("builtin:") and v not in ("builtin:textbook", "builtin:generated"):
            raise ValueError("builtin sources are builtin:textbook and builtin:generated")
        return v


Resources = dict[str, float]


class WorkersSection(Section):
    """Actor pools and what each role asks of Ray (``raylib/placement.py`` turns these into requests).

    Requests go out exactly as configured, never sized from what the cluster has at start (under an
    autoscaler it is empty then): a role asking for a GPU or a custom resource makes the autoscaler add
    a node that has it. A request not met within ``placement_timeout_s`` stops the job naming the role.
    SFT and EBM training workers take theirs from ``sft``/``ebm`` (``use_gpu``, ``resources_per_worker``).
    """

    lean: int = Field(2, ge=1, description="LeanWorker actors")
    lean_cpus: float = Field(0.5, gt=0, description="CPUs reserved per LeanWorker")
    lean_resource: Optional[str] = Field(None, description="custom resource that places LeanWorkers, one unit "
                                         "each (clusters: a Lean node type declares it)")
    drivers: int = Field(2, ge=1, description="SearchDriver actors")
    driver_cpus: float = Field(0.0, ge=0, description="CPUs reserved per SearchDriver (it mostly awaits)")
    driver_resources: Resources = Field(default_factory=dict, description="custom resources per SearchDriver, "
                                        "e.g. {head_node: 0.01} to keep drivers on the head")
    searches_per_driver: int = Field(4, ge=1, description="theorem searches one driver runs at once")
    generator_cpus: float = Field(1.0, ge=0, description="CPUs reserved for the GeneratorActor")
    generator_gpus: float = Field(0.0, ge=0, description="GPUs for the GeneratorActor (a fraction shares one "
                                  "GPU); 0 or null: none. Never guessed from the cluster")
    generator_resources: Resources = Field(default_factory=dict, description="custom resources of the "
                                           "GeneratorActor, e.g. {gpu_node: 0.01} to put it on a GPU node type")
    encoder_cpus: float = Field(0.0, ge=0, description="CPUs reserved for the EncoderActor")
    encoder_gpus: float = Field(0.0, ge=0, description="GPUs for the EncoderActor; 0 or null: none")
    encoder_resources: Resources = Field(default_factory=dict, description="custom resources of the EncoderActor "
                                         "and of the encode job's actors")
    encode_cpus: float = Field(1.0, ge=0, description="CPUs per encoder actor of the encode job (Ray Data); its "
                               "GPUs are value.encode_gpus")
    placement_timeout_s: float = Field(600.0, gt=0, description="how long the actors of a role may wait for "
                                       "their resources (an autoscaler adding a node included) before the job "
                                       "stops with a message naming the role, its request and the cluster")
    linger_ms: float = Field(5.0, ge=0, description="how long the generator/encoder wait to batch requests")
    serve_during_training: bool = Field(False, description="iterate: keep the generator and encoder up while SFT, "
                                        "probes, encode and EBM train (false: they give their GPUs back first)")
    max_attempts: int = Field(3, ge=1, description="tries per Lean call when its worker dies under it")
    leases_per_worker: int = Field(4, ge=1, description="searches one LeanWorker serves at once (each leases "
                                   "it for its life); more wait for a free lease")
    lean_dealing: Literal["lease", "spread"] = Field("lease", description="lease: a search's tactics go to its "
                                                     "leased worker; spread: dealt over all workers (old, for "
                                                     "comparison)")
    infra_retries: int = Field(2, ge=0, description="retries of a theorem after an infrastructure failure; past "
                               "them it is recorded infra_error and redone by the next run")
    retry_backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles at each retry")

    @field_validator("generator_gpus", "encoder_gpus", mode="before")
    @classmethod
    def _gpus_null(cls, v: Any) -> Any:
        return 0.0 if v is None else v  # null read as "no GPU": never a guess from the cluster

    @field_validator("generator_resources", "encoder_resources", "driver_resources")
    @classmethod
    def _resources(cls, v: Resources) -> Resources:
        for name, amount in v.items():
            if name in ("CPU", "GPU", "memory", "object_store_memory"):
                raise ValueError(f"{name!r} is not a custom resource: use the role's _cpus/_gpus keys")
            if amount <= 0:
                raise ValueError(f"custom resource {name!r}: amount must be > 0 (got {amount})")
        return v


class ValueSection(Section):
    ebm_path: Optional[str] = Field(None, description="trained EBM directory; null: no value model (search.beta "
                                    "is then ignored)")
    encoder_path: Optional[str] = Field(None, description="encoder model directory; null: model.path")
    encoder_adapter: Optional[str] = Field(None, description="LoRA adapter of the encoder; null: none")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    pooling: Literal["mean", "last"] = "mean"
    max_length: int = Field(512, ge=8, description="tokens kept per state")
    max_batch_tokens: int = Field(16384, ge=64, description="padded tokens per encoder batch")
    encode_workers: int = Field(1, ge=1, description="encode job: encoder actors in the Ray Data actor pool")
    encode_gpus: Optional[float] = Field(None, ge=0, description="encode job: GPUs per encoder actor; null: "
                                         "workers.encoder_gpus")
    encode_batch_states: int = Field(256, ge=1, description="encode job: states per actor call (the encoder "
                                     "splits them under max_batch_tokens)")
    part_states: int = Field(4096, ge=1, description="encode job: embeddings per parquet part written")


class Config(Section):
    run: RunSection = RunSection()
    ray: RaySection = RaySection()
    env: EnvSection = EnvSection()
    theorems: TheoremsSection = TheoremsSection()
    workers: WorkersSection = WorkersSection()
    model: ModelSection = ModelSection()
    generation: GenerationSection = GenerationSection()
    sft: SFTSection = SFTSection()
    search: SearchSection = SearchSection()
    value: ValueSection = ValueSection()
    iterate: IterateSection = IterateSection()
    ebm: EBMSection = EBMSection()

    @model_validator(mode="after")
    def _generation_budget(self) -> "Config":
        budget, s = self.generation.max_batch_tokens, self.search
        if budget is not None and budget < s.num_candidates * s.max_tokens:
            raise ValueError(f"generation.max_batch_tokens {budget} cannot hold even one state's "
                             f"search.num_candidates x search.max_tokens = {s.num_candidates} x {s.max_tokens} tokens")
        return self

    def hash(self) -> str:
        """A stable 12-hex-digit hash of every setting, stamped on artifacts."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]

    @property
    def run_dir(self) -> Path:
        return Path(self.run.root) / self.run.name


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one ``a.b=c`` override to a raw config dict; ``c`` is read as YAML (numbers, lists, null)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set env.timeout_s=30")
    key, _, text = assignment.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {assignment!r}: empty key part in {key!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {assignment!r}: value is not valid YAML: {e}") from None
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: {'.'.join(parts[:i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Load a YAML config (None: the embedded default) and apply overrides; raise ConfigError if bad."""
    where = str(path) if path is not None else "<embedded default>"
    raw: Any = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: top level must be a mapping of sections ({', '.join(Config.model_fields)})")
    overrides = list(overrides)
    for o in overrides:
        apply_override(raw, o)
    if overrides:
        where += " with --set " + " ".join(overrides)
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_explain(e, where)) from None


def _explain(err: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid config"]
    for item in err.errors():
        loc = [str(x) for x in item["loc"]]
        key = ".".join(loc) or "<top>"
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            lines.append(f"  {key}: unknown key; allowed here: {', '.join(allowed)}")
        else:
            got = item.get("input")
            lines.append(f"  {key}: {item['msg']} (got {got!r})")
    return "\n".join(lines)


def _allowed_keys(loc: list[str]) -> list[str]:
    model: Any = Config
    for part in loc:
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return list(model.model_fields)


def job_parser(module: str, doc: str | None, example: str = "env.timeout_s=30"):
    """The argument parser of ``python -m <module>``: its docstring as the help text, ``--config`` and ``--set``."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, example)
    return parser


def config_from_args(args, log) -> "Config | None":
    """The config a job's ``--config``/``--set`` name, or None after logging why not (the job exits 2)."""
    try:
        return load_config(args.config, args.overrides)
    except ConfigError as e:
        log.error("%s", e)
        return None


def add_config_args(parser, example: str = "env.timeout_s=30") -> None:
    """The ``--config`` and ``--set`` options every job and command takes."""
    parser.add_argument("--config", help="YAML config (default: the embedded default, configs/local.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value, e.g. --set {example} (repeatable)")


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
