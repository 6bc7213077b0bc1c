"""`wasmctl audit` on 100 modules of ~50 dependencies each, against both real OSV databases:
run by hand, never by the test suite.

    python benchmarks/audit.py                 # ~6 minutes on 2 cores, most of it the sbom passes
    python benchmarks/audit.py --runs 3 --sbom-rounds 1    # a shorter run, ~2 minutes
    python benchmarks/audit.py --profile       # then -X importtime and cProfile of the warm run
    python benchmarks/audit.py --rev HEAD      # wasmctl/ as committed, not the working tree

Issue 14, "Performance": loading both databases and auditing 100 modules with about 50
dependencies each takes <= 1 s after the first load, with an index built once per database
content; report the first-load time and the ratio to a cold `wasmctl sbom` of the same modules.

The input (generated, seeded: the same bytes every run) is benchmarks/.work/audit/modules/:
80 Rust modules (examples/modules/hello.wasm plus a rustc `producers` section and a
cargo-auditable `.dep-v0` section of 50 crates.io crates under a local root) and 20 Go modules
(a data segment holding `modinfo` with 50 `dep` lines and a `go` toolchain line, made by
tests/sbom_fixtures.go_module). Each module has 3 (Rust) or 4 (Go) packages at a version the
real records' ranges say is affected, 4 at a version a record names as its fix, and the rest
from a list of common crates or Go modules, each raised to the newest fixed version the
records know when that is newer (a maintained lockfile); one Go module in four is built with
an older toolchain (go1.22.10, go1.24.2), the others with the newest one the records fix.
The database is ../shared/testdata/osv (crates.io and Go `all.zip`, 5,497 records).

Measured side by side, in rounds: every round runs each measurement once, in a rotated order,
so load from a neighbour falls on all of them alike. Each process is started with posix_spawn
and reaped with wait4 (wall time, its user+system time), stdout to /dev/null:

- first load: `wasmctl audit --db DB modules/` with XDG_CACHE_HOME an empty directory (so the
  index is built, then the audit runs);
- warm (judged, <= 1 s): the same with the cache holding the index; for information the same
  with `--format json`, and with `.pyc` files for every module (PYTHONPYCACHEPREFIX, as an
  installed wheel has them; this machine sets PYTHONDONTWRITEBYTECODE and wasmctl/ has no
  __pycache__);
- `wasmctl sbom MODULE` once per module (the command takes one target): the total of the 100
  processes, and the per-module median; in `--sbom-rounds` of the rounds only (a pass is
  100 processes). For information, when `wasmctl sbom` imports rfc3987_syntax (through
  jsonschema's format checks; it builds its lark grammars on import, ~1.6 s a process), the
  same through a launcher that keeps it from being imported;
- in process, a fresh interpreter each: the import of wasmctl.audit; `db.load(DB, index=...)`
  then `audit_targets([modules], database)` with the index, first in the process and then
  again; `db.load(DB, index=False)` (the full read, no index) and the audit on it; `db.load`
  with an empty index directory (the index build, in process);
- `python -c pass`, the floor under every process.
Peak RSS is measured apart, by GNU time (median of 3).

Before anything is timed: the database read in full without an index (an independent path
from the index) and the audit of the modules on it give the expected findings; every planted
affected package must be among them; the CLI, first load and warm, must exit 1 with a JSON
report naming the 100 targets, no error, the expected package count and exactly the expected
findings. Every timed audit must exit 1, every sbom 0, every first load must leave an index,
a warm run must not write it again, and every in-process audit must give the same count.
wasmctl's sources and the installed distributions must be the same at the end as at the
start (this machine is shared with sessions that edit and install): `--rev REV` measures a
`git archive` snapshot of wasmctl/ at REV, which nobody edits.

Results: a table on stdout and benchmarks/.work/audit.json. Exit 0 when everything ran (a
FAIL is a result), 2 when something could not be run or a check did not hold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work"
HERE = WORK / "audit"
MODULES = HERE / "modules"
DEFAULT_DB = ROOT.parent / "shared" / "testdata" / "osv"
RESULTS = WORK / "audit.json"
sys.path.insert(0, str(ROOT))

SEED = 20261205
RUST_MODULES = 80
GO_MODULES = 20
DEPS = 50
TARGET_S = 1.0
NOISY_RSD = 0.10
COLUMNS = "100"
X = "\u00d7"  # the multiplication sign, in ratios


class Failed(Exception):
    """A check did not hold: nothing is judged."""


# -- the input -------------------------------------------------------------------------------

# Common crates at versions of late 2024 (raised by `current` to the newest fixed version
# the records know).
COMMON_CRATES = """
serde 1.0.215; serde_derive 1.0.215; serde_json 1.0.133; anyhow 1.0.93; thiserror 1.0.69;
thiserror-impl 1.0.69; itoa 1.0.14; ryu 1.0.18; memchr 2.7.4; proc-macro2 1.0.92; quote 1.0.37;
syn 2.0.90; unicode-ident 1.0.14; cfg-if 1.0.0; libc 0.2.167; log 0.4.22; once_cell 1.20.2;
lazy_static 1.5.0; bitflags 2.6.0; bytes 1.9.0; tokio 1.42.0; tokio-macros 2.4.0;
futures 0.3.31; futures-core 0.3.31; futures-util 0.3.31; futures-channel 0.3.31;
futures-task 0.3.31; futures-sink 0.3.31; futures-io 0.3.31; futures-macro 0.3.31;
pin-project-lite 0.2.15; pin-utils 0.1.0; slab 0.4.9; smallvec 1.13.2; hashbrown 0.15.2;
indexmap 2.7.0; equivalent 1.0.1; ahash 0.8.11; getrandom 0.2.15; rand 0.8.5; rand_core 0.6.4;
rand_chacha 0.3.1; ppv-lite86 0.2.20; zerocopy 0.7.35; regex 1.11.1; regex-syntax 0.8.5;
regex-automata 0.4.9; aho-corasick 1.1.3; base64 0.22.1; hex 0.4.3; sha2 0.10.8; digest 0.10.7;
generic-array 0.14.7; typenum 1.17.0; block-buffer 0.10.4; crypto-common 0.1.6;
cpufeatures 0.2.16; version_check 0.9.5; autocfg 1.4.0; http 1.2.0; http-body 1.0.1;
httparse 1.9.5; url 2.5.4; percent-encoding 2.3.1; form_urlencoded 1.2.1; idna 1.0.3;
tracing 0.1.41; tracing-core 0.1.33; tracing-attributes 0.1.28; chrono 0.4.38; time 0.3.37;
uuid 1.11.0; semver 1.0.23; either 1.13.0; itertools 0.13.0; byteorder 1.5.0; crc32fast 1.4.2;
flate2 1.0.35; miniz_oxide 0.8.0; adler2 2.0.0; wasm-bindgen 0.2.99; wasm-bindgen-macro 0.2.99;
js-sys 0.3.76; wit-bindgen-rt 0.36.0; heck 0.5.0; strsim 0.11.1; clap 4.5.23;
clap_builder 4.5.23; clap_lex 0.7.4; anstream 0.6.18; anstyle 1.0.10; utf8parse 0.2.2;
colorchoice 1.0.3; toml 0.8.19; toml_edit 0.22.22; winnow 0.6.20; serde_spanned 0.6.8;
toml_datetime 0.6.8; parking_lot 0.12.3; parking_lot_core 0.9.10; lock_api 0.4.12;
scopeguard 1.2.0; mio 1.0.3; socket2 0.5.8; num-traits 0.2.19; num-integer 0.1.46;
static_assertions 1.1.0; arrayvec 0.7.6; tinyvec 1.8.0; unicode-width 0.2.0;
unicode-segmentation 1.12.0; encoding_rs 0.8.35; mime 0.3.17; fnv 1.0.7;
crossbeam-utils 0.8.20; crossbeam-channel 0.5.13; rayon 1.10.0; rayon-core 1.12.1;
postcard 1.1.1; spin 0.9.8; wasmparser 0.221.2; wasm-encoder 0.221.2; leb128 0.2.5;
bumpalo 3.16.0; siphasher 1.0.1; phf 0.11.2; nom 7.1.3; minimal-lexical 0.2.1; humantime 2.1.0;
env_logger 0.11.5; sharded-slab 0.1.7; tracing-subscriber 0.3.19; matchers 0.1.0;
nu-ansi-term 0.46.0; overload 0.1.1; thread_local 1.1.8; valuable 0.1.0; zeroize 1.8.1;
subtle 2.6.1; ring 0.17.8; rustls 0.23.19; rustls-pki-types 1.10.0; webpki-roots 0.26.7;
untrusted 0.9.0; hyper 1.5.1; h2 0.4.7; tower 0.5.1; tower-service 0.3.3; tower-layer 0.3.3;
httpdate 1.0.3; want 0.3.1; try-lock 0.2.5; atomic-waker 1.1.2; sync_wrapper 1.0.2
"""
PROC_MACROS = {
    "serde_derive",
    "thiserror-impl",
    "tokio-macros",
    "futures-macro",
    "proc-macro2",
    "quote",
    "syn",
    "wasm-bindgen-macro",
    "tracing-attributes",
    "version_check",
    "autocfg",
}

# Common Go modules at versions of late 2024 (raised likewise).
COMMON_GO = """
golang.org/x/net v0.33.0; golang.org/x/crypto v0.31.0; golang.org/x/sys v0.28.0;
golang.org/x/text v0.21.0; golang.org/x/sync v0.10.0; golang.org/x/mod v0.22.0;
golang.org/x/oauth2 v0.24.0; golang.org/x/time v0.8.0; golang.org/x/tools v0.28.0;
golang.org/x/term v0.27.0; golang.org/x/exp v0.0.0-20241210194714-1829a127f884;
google.golang.org/protobuf v1.35.2; google.golang.org/grpc v1.68.1;
google.golang.org/genproto/googleapis/rpc v0.0.0-20241206012308-a4fef0638583;
github.com/google/uuid v1.6.0; github.com/google/go-cmp v0.6.0;
github.com/stretchr/testify v1.10.0; github.com/davecgh/go-spew v1.1.1;
github.com/pmezard/go-difflib v1.0.0; gopkg.in/yaml.v3 v3.0.1; gopkg.in/yaml.v2 v2.4.0;
github.com/spf13/cobra v1.8.1; github.com/spf13/pflag v1.0.5; github.com/spf13/viper v1.19.0;
github.com/spf13/cast v1.7.0; github.com/spf13/afero v1.11.0; github.com/sirupsen/logrus v1.9.3;
go.uber.org/zap v1.27.0; go.uber.org/multierr v1.11.0; github.com/pkg/errors v0.9.1;
github.com/gorilla/mux v1.8.1; github.com/gorilla/websocket v1.5.3;
github.com/go-chi/chi/v5 v5.1.0; github.com/labstack/echo/v4 v4.13.0;
github.com/gin-gonic/gin v1.10.0; github.com/prometheus/client_golang v1.20.5;
github.com/prometheus/client_model v0.6.1; github.com/prometheus/common v0.61.0;
github.com/prometheus/procfs v0.15.1; github.com/beorn7/perks v1.0.1;
github.com/cespare/xxhash/v2 v2.3.0; github.com/golang/protobuf v1.5.4;
github.com/klauspost/compress v1.17.11; github.com/json-iterator/go v1.1.12;
github.com/modern-go/reflect2 v1.0.2;
github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd;
github.com/mattn/go-isatty v0.0.20; github.com/mattn/go-colorable v0.1.13;
github.com/fsnotify/fsnotify v1.8.0; github.com/hashicorp/go-multierror v1.1.1;
github.com/hashicorp/errwrap v1.1.0; github.com/hashicorp/golang-lru/v2 v2.0.7;
github.com/BurntSushi/toml v1.4.0; github.com/tetratelabs/wazero v1.8.2;
github.com/golang-jwt/jwt/v5 v5.2.1; github.com/go-playground/validator/v10 v10.23.0;
github.com/valyala/fasthttp v1.58.0; github.com/redis/go-redis/v9 v9.7.0;
github.com/jackc/pgx/v5 v5.7.1; github.com/opencontainers/go-digest v1.0.0;
github.com/opencontainers/image-spec v1.1.0; github.com/rs/zerolog v1.33.0;
github.com/dustin/go-humanize v1.0.1; github.com/inconshreveable/mousetrap v1.1.0;
github.com/kr/text v0.2.0; github.com/rogpeppe/go-internal v1.13.1;
go.opentelemetry.io/otel v1.33.0; go.opentelemetry.io/otel/trace v1.33.0;
go.opentelemetry.io/otel/metric v1.33.0; github.com/go-logr/logr v1.4.2;
github.com/go-logr/stdr v1.2.2; github.com/felixge/httpsnoop v1.0.4;
github.com/google/gofuzz v1.2.0; github.com/gogo/protobuf v1.3.2;
github.com/josharian/intern v1.0.0; github.com/mailru/easyjson v0.7.7;
github.com/pelletier/go-toml/v2 v2.2.3; github.com/subosito/gotenv v1.6.0;
github.com/magiconair/properties v1.8.9; github.com/sourcegraph/conc v0.3.0;
github.com/ugorji/go/codec v1.2.12; github.com/bytedance/sonic v1.12.6;
github.com/leodido/go-urn v1.4.0; github.com/gabriel-vasile/mimetype v1.4.7;
github.com/go-playground/locales v0.14.1; github.com/go-playground/universal-translator v0.18.1
"""
OLD_GO_TOOLCHAINS = ("go1.22.10", "go1.24.2")
GO_LIBRARY_RECORDS = 10

_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(\+incompatible)?$")


def _pairs(text: str) -> list[tuple[str, str]]:
    return [tuple(item.split()) for item in text.replace("\n", " ").split(";") if item.strip()]  # type: ignore[misc]


def _release(version: str) -> tuple[int, int, int] | None:
    match = _RELEASE.match(version)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def _before(fixed: str, introduced: str) -> str | None:
    """A release inside [introduced, fixed): `introduced` when it is a release above 0.0.0,
    else the release just below `fixed` (patch, else minor, minus one) when it is still at
    or above `introduced`."""
    top = _release(fixed)
    if top is None:
        return None
    suffix = "+incompatible" if fixed.endswith("+incompatible") else ""
    low = _release(introduced)
    if low is not None and low != (0, 0, 0) and low < top:
        return introduced
    major, minor, patch = top
    if patch:
        candidate = (major, minor, patch - 1)
    elif minor:
        candidate = (major, minor - 1, 0)
    else:
        return None
    floor = tuple(int(x) for x in re.findall(r"\d+", introduced)[:3]) if introduced != "0" else ()
    if floor and candidate < floor:
        return None
    return ".".join(map(str, candidate)) + suffix


def _go_path_fits(path: str, version: str) -> bool:
    """Whether a Go module path and version agree on the major version (`/vN`, `.vN`,
    `+incompatible`), as a real build list has them."""
    release = _release(version.removeprefix("v"))
    if release is None:
        return False
    major = release[0]
    if version.endswith("+incompatible"):
        return major >= 2 and not re.search(r"[/.]v\d+$", path)
    if major >= 2:
        return path.endswith((f"/v{major}", f".v{major}"))
    return not re.search(r"/v\d+$", path) and not path.startswith("gopkg.in/")


def record_candidates(db: Path) -> dict[str, Any]:
    """From the real records, per ecosystem: (package, version) pairs at an affected version
    ("vulnerable") and at a fixed one ("fixed"), from vulnerabilities only (RustSec's
    informational advisories are left to the common crates), no withdrawn record; for Go,
    only packages that at most GO_LIBRARY_RECORDS records name (libraries, not the large
    applications with hundreds). And the newest fixed release of every package ("newest")."""
    import zipfile

    found: dict[str, Any] = {}
    for ecosystem in ("crates.io", "Go"):
        vulnerable: set[tuple[str, str]] = set()
        fixed: set[tuple[str, str]] = set()
        newest: dict[str, tuple[tuple[int, int, int], str]] = {}
        named: dict[str, int] = {}
        with zipfile.ZipFile(db / ecosystem / "all.zip") as archive:
            for member in sorted(archive.namelist()):
                record = json.loads(archive.read(member))
                if record.get("withdrawn"):
                    continue
                informational = (record.get("database_specific") or {}).get("informational")
                for affected in record.get("affected", []):
                    name = affected["package"]["name"]
                    named[name] = named.get(name, 0) + 1
                    specific = affected.get("database_specific") or {}
                    for rng in affected.get("ranges", []):
                        if rng.get("type") != "SEMVER":
                            continue
                        introduced = "0"
                        for event in rng["events"]:
                            if "introduced" in event:
                                introduced = event["introduced"]
                                continue
                            if "fixed" not in event or _release(event["fixed"]) is None:
                                continue
                            version = event["fixed"]
                            below = _before(version, introduced)
                            if ecosystem == "Go" and name != "stdlib":
                                version = "v" + version
                                below = None if below is None else "v" + below
                                if not _go_path_fits(name, version):
                                    continue
                                if below is not None and not _go_path_fits(name, below):
                                    below = None
                            release = _release(version.removeprefix("v"))
                            assert release is not None
                            if name not in newest or newest[name][0] < release:
                                newest[name] = (release, version)
                            if name in ("stdlib", "toolchain"):
                                continue
                            if informational or specific.get("informational"):
                                continue
                            fixed.add((name, version))
                            if below is not None:
                                vulnerable.add((name, below))
        if ecosystem == "Go":
            vulnerable = {p for p in vulnerable if named[p[0]] <= GO_LIBRARY_RECORDS}
            fixed = {p for p in fixed if named[p[0]] <= GO_LIBRARY_RECORDS}
        found[ecosystem] = {
            "vulnerable": sorted(vulnerable),
            "fixed": sorted(fixed),
            "newest": {name: version for name, (_, version) in newest.items()},
        }
    return found


def current(pairs: list[tuple[str, str]], newest: dict[str, str]) -> list[tuple[str, str]]:
    """The common packages at the newest release the records know a fix in, where that is
    newer than the version given: up to date as of the database, as most of a maintained
    lockfile is."""
    out = []
    for name, version in pairs:
        known = newest.get(name)
        mine = _release(version.removeprefix("v"))
        theirs = _release(known.removeprefix("v")) if known is not None else None
        if known is not None and mine and theirs and theirs > mine:
            version = known
        out.append((name, version))
    return out


@dataclass(frozen=True)
class Plan:
    """What a module is built from, and which of its packages were planted as affected."""

    file: str
    language: str
    packages: tuple[tuple[str, str], ...]
    vulnerable: tuple[tuple[str, str], ...]
    toolchain: str | None = None


def plan_modules(candidates: dict[str, Any]) -> list[Plan]:
    rng = random.Random(SEED)
    plans: list[Plan] = []
    crates = current(_pairs(COMMON_CRATES), candidates["crates.io"]["newest"])
    go_common = current(_pairs(COMMON_GO), candidates["Go"]["newest"])
    newest_go = "go" + candidates["Go"]["newest"]["stdlib"]
    vuln: dict[str, dict[str, list[str]]] = {}
    fixes: dict[str, dict[str, list[str]]] = {}
    for eco in ("crates.io", "Go"):
        vuln[eco], fixes[eco] = {}, {}
        for name, version in candidates[eco]["vulnerable"]:
            vuln[eco].setdefault(name, []).append(version)
        for name, version in candidates[eco]["fixed"]:
            fixes[eco].setdefault(name, []).append(version)
    names = {eco: sorted(v) for eco, v in vuln.items()}
    fixed_names = {eco: sorted(v) for eco, v in fixes.items()}
    for lang, count, common, eco, n_fixed, n_vuln in (
        ("rust", RUST_MODULES, crates, "crates.io", 4, 3),
        ("go", GO_MODULES, go_common, "Go", 4, 4),
    ):
        for i in range(count):
            # a package first (each alike, however many records name it), then a version
            vulnerable = [(n, rng.choice(vuln[eco][n])) for n in rng.sample(names[eco], n_vuln)]
            taken = {name for name, _ in vulnerable}
            spare = [n for n in rng.sample(fixed_names[eco], n_fixed * 2) if n not in taken]
            fixed = [(n, rng.choice(fixes[eco][n])) for n in spare[:n_fixed]]
            taken |= {name for name, _ in fixed}
            rest = [p for p in rng.sample(common, len(common)) if p[0] not in taken]
            chosen = vulnerable + fixed + rest[: DEPS - len(vulnerable) - len(fixed)]
            rng.shuffle(chosen)
            assert len(chosen) == DEPS and len({n for n, _ in chosen}) == DEPS
            toolchain = None
            if lang == "go":  # one in four at an older toolchain, the others current
                toolchain = OLD_GO_TOOLCHAINS[i // 4 % 2] if i % 4 == 3 else newest_go
            plans.append(
                Plan(f"{lang}-{i:03d}.wasm", lang, tuple(chosen), tuple(vulnerable), toolchain)
            )
    return plans


def write_modules(plans: list[Plan], directory: Path) -> None:
    """The modules, written into a fresh directory that then replaces `directory`."""
    from tests.sbom_fixtures import HELLO, RUSTC, deflate, go_module
    from tests.wasmbytes import custom_section, producers_payload

    hello = HELLO.read_bytes()
    producers = custom_section("producers", producers_payload(RUSTC))
    staging = Path(tempfile.mkdtemp(prefix=".modules-", dir=directory.parent))
    try:
        for plan in plans:
            if plan.language == "rust":
                packages: list[dict[str, Any]] = [
                    {
                        "name": "app",
                        "version": "0.1.0",
                        "source": "local",
                        "root": True,
                        "dependencies": list(range(1, 11)),
                    },
                ]
                for index, (name, version) in enumerate(plan.packages, start=1):
                    entry: dict[str, Any] = {
                        "name": name,
                        "version": version,
                        "source": "crates.io",
                    }
                    if name in PROC_MACROS:
                        entry["kind"] = "build"
                    edges = list(range(index + 1, min(index + 4, DEPS + 1)))[: index % 4]
                    if edges:
                        entry["dependencies"] = edges
                    packages.append(entry)
                info = {"format": 1, "packages": packages}
                section = custom_section(".dep-v0", deflate(info))
                (staging / plan.file).write_bytes(hello + producers + section)
            else:
                name = plan.file.removesuffix(".wasm")
                lines = [
                    f"go\t{plan.toolchain}",
                    f"path\texample.com/{name}/cmd/{name}",
                    f"mod\texample.com/{name}\tv1.0.0\th1:{name}=",
                    *(
                        f"dep\t{path}\t{version}\th1:{path}@{version}="
                        for path, version in plan.packages
                    ),
                    "build\t-buildmode=exe",
                    "build\t-compiler=gc",
                    "build\tCGO_ENABLED=0",
                    "build\tGOARCH=wasm",
                    "build\tGOOS=wasip1",
                ]
                scratch = staging / f".{name}"
                scratch.mkdir()
                built = go_module(scratch, "\n".join(lines) + "\n")
                built.rename(staging / plan.file)
                shutil.rmtree(scratch)
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# -- running processes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds
    cpu: float  # user + system, seconds
    code: int


def spawn(argv: list[str], env: dict[str, str], stderr: Path) -> Sample:
    """Run argv (stdout to /dev/null, stderr to a file), timed from before posix_spawn to
    after wait4. (wait4's ru_maxrss is not the child's own here: a posix_spawn child shares
    this process's memory until its exec, so it records this process's peak; `peak_rss`
    measures through GNU time instead.)"""
    actions = [
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, str(stderr), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
    ]
    start = time.perf_counter()
    try:
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    except OSError as e:  # e.g. the console script gone while another session reinstalls
        raise Failed(f"cannot run {argv[0]}: {e}") from None
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    return Sample(wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status))


def peak_rss(argv: list[str], env: dict[str, str], runs: int = 3) -> float | None:
    """The median peak RSS (MiB) of argv, by GNU time (`%M`, from its own small fork, so
    nothing of this process is counted); None without /usr/bin/time."""
    if not os.access("/usr/bin/time", os.X_OK):
        return None
    out = HERE / "time.txt"
    values = []
    for _ in range(runs):
        subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", str(out), *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        values.append(int(out.read_text().split()[-1]) / 1024)
    return statistics.median(values)


def write_launcher(path: Path, wasmctl: str) -> str:
    """A launcher in the shape of wasmctl's console script (same shebang) that keeps
    jsonschema from importing rfc3987_syntax: information only (see the README)."""
    shebang = Path(wasmctl).read_text().split("\n", 1)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"{shebang}\n"
        "import re\n"
        "import sys\n"
        "sys.modules['rfc3987_syntax'] = None  # jsonschema then defines no iri checks\n"
        "from wasmctl.cli import main\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        "    sys.exit(main())\n"
    )
    path.chmod(0o755)
    return str(path)


def stats(values: list[float]) -> dict[str, float]:
    mean = statistics.fmean(values)
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "mean": mean,
        "rsd": statistics.stdev(values) / mean if len(values) > 1 and mean else 0.0,
        "n": len(values),
    }


def source_digest(root: Path) -> str:
    """A digest of wasmctl's sources under `root`: a run during which they change measures
    nothing."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((root / "wasmctl").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def environment_digest() -> str:
    """The installed distributions and their versions: typer, rich, jsonschema... changed
    during a run (another session's `pip install`) invalidate it as much as wasmctl's own
    sources do."""
    import hashlib
    from importlib import metadata

    names = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def snapshot(rev: str) -> tuple[Path, str]:
    """wasmctl/ as committed at `rev`, extracted by `git archive` under
    benchmarks/.work/audit/src/<commit>/ (the working tree is not touched): what `--rev`
    measures, so that edits made in the tree during a run cannot change what is timed."""
    import io
    import tarfile

    try:
        commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError:
        raise Failed(f"--rev {rev}: no such commit") from None
    dest = HERE / "src" / commit
    if not (dest / "wasmctl" / "__init__.py").is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".src-", dir=dest.parent))
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit, "wasmctl"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(staging, filter="data")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    return dest, git("rev-parse", "--short", commit)


def resolve_wasmctl() -> str:
    """The console script's real file (never a pyenv shim), as benchmarks/lib.sh finds it."""
    script = Path(sysconfig.get_path("scripts")) / "wasmctl"
    if not (script.is_file() and os.access(script, os.X_OK)):
        found = shutil.which("wasmctl")
        if found is None:
            raise Failed("no wasmctl console script (pip install -e . first)")
        script = Path(found)
    first = script.read_bytes()[:200].split(b"\n", 1)[0]
    if b"python" not in first:
        raise Failed(f"{script} is not a Python console script (a shim?): {first!r}")
    return str(script)


# -- checks ----------------------------------------------------------------------------------

FINDING_KEY = ("target", "where", "id", "package", "version", "status", "informational")


def finding_keys(document: dict[str, Any]) -> list[tuple[str, ...]]:
    return sorted(
        tuple(str(f[k]) for k in FINDING_KEY) for t in document["targets"] for f in t["findings"]
    )


def check_report(document: dict[str, Any], expected: dict[str, Any], what: str) -> None:
    summary = document["summary"]
    problems = []
    if summary["targets"] != len(expected["targets"]) or summary["errors"] != 0:
        problems.append(f"targets {summary['targets']}, errors {summary['errors']}")
    errors = [t["target"] for t in document["targets"] if t["error"] or not t["modules"]]
    if errors:
        problems.append(f"targets not audited: {errors[:5]}")
    if sorted(t["target"] for t in document["targets"]) != expected["targets"]:
        problems.append("not the expected targets")
    if summary["packages"] != expected["packages"]:
        problems.append(f"{summary['packages']} packages, expected {expected['packages']}")
    if finding_keys(document) != expected["findings"]:
        got, want = set(finding_keys(document)), set(expected["findings"])
        problems.append(
            f"{summary['findings']} findings, expected {len(want)}: "
            f"{len(got - want)} unexpected (e.g. {sorted(got - want)[:2]}), "
            f"{len(want - got)} missing (e.g. {sorted(want - got)[:2]})"
        )
    if document["verdict"] != "deny":
        problems.append(f"verdict {document['verdict']}")
    if problems:
        raise Failed(f"{what}: " + "; ".join(problems))


def expected_report(db: Path, plans: list[Plan], target: str) -> dict[str, Any]:
    """The findings of the database read in full (no index), rendered as the CLI renders
    JSON; every planted affected package must be among them."""
    from wasmctl.audit import AuditOptions, audit_targets
    from wasmctl.audit import db as databases
    from wasmctl.audit.report import AuditFormat, render

    database = databases.load(db, index=False)
    report = audit_targets([target], database, AuditOptions())
    document = json.loads(render(report, AuditFormat.JSON, now=datetime.now(UTC)))
    by_module: dict[str, set[tuple[str, str]]] = {}
    for t in document["targets"]:
        for f in t["findings"]:
            by_module.setdefault(Path(t["target"]).name, set()).add((f["package"], f["version"]))
    missing = [
        (plan.file, name, version)
        for plan in plans
        for name, version in plan.vulnerable
        if (name, version) not in by_module.get(plan.file, set())
    ]
    if missing:
        raise Failed(
            f"planted affected packages without a finding: {missing[:5]} ({len(missing)} in all)"
        )
    findings = [f for t in document["targets"] for f in t["findings"]]
    counts: dict[str, int] = {}
    for f in findings:
        counts[f["status"]] = counts.get(f["status"], 0) + 1
    return {
        "targets": sorted(t["target"] for t in document["targets"]),
        "packages": document["summary"]["packages"],
        "findings": finding_keys(document),
        "summary": document["summary"],
        "by_status": counts,
        "by_ecosystem": {
            eco: sum(1 for f in findings if f["ecosystem"] == eco) for eco in ("crates.io", "Go")
        },
        "advisories": len({f["id"] for f in findings}),
        "planted": sum(len(p.vulnerable) for p in plans),
        "database": {k: document["database"][k] for k in ("digest", "records", "withdrawn")},
    }


# -- in process ------------------------------------------------------------------------------

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from wasmctl.audit import AuditOptions, audit_targets
from wasmctl.audit import db as databases
t1 = time.perf_counter()
from pathlib import Path
mode, db, target, index = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
import wasmctl
out = {"import": t1 - t0, "file": wasmctl.__file__}

def run(index):
    a = time.perf_counter()
    database = databases.load(db, index=index)
    b = time.perf_counter()
    report = audit_targets([target], database, AuditOptions())
    c = time.perf_counter()
    findings = sum(len(t.findings) for t in report.targets)
    errors = sum(1 for t in report.targets if t.error)
    return {"load": b - a, "audit": c - b, "total": c - a, "findings": findings, "errors": errors}

if mode == "indexed":  # first in this process, then again (warm caches in the process)
    out["indexed_cold"] = run(Path(index))
    out["indexed_warm"] = [run(Path(index)) for _ in range(5)]
elif mode == "full":
    out["full"] = run(False)
else:  # an empty index directory: the index is built
    out["build"] = run(Path(index))
json.dump(out, sys.stdout)
"""


def in_process(
    mode: str, db: Path, target: str, index: Path, env: dict[str, str]
) -> dict[str, Any]:
    """One fresh interpreter: imports, then `db.load` and `audit_targets` timed apart."""
    proc = subprocess.run(
        [sys.executable, "-P", "-c", CHILD, mode, str(db), target, str(index)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise Failed(f"in-process measurement ({mode}) failed:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


# -- profile ---------------------------------------------------------------------------------


def profile(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """-X importtime (cumulative time of the top-level imports, and self time by package)
    and cProfile of one warm whole-process audit."""
    proc = subprocess.run(
        [sys.executable, "-P", "-X", "importtime", *argv],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    top: dict[str, int] = {}
    by_package: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not match:
            continue
        self_us, cumulative, indent, name = int(match[1]), int(match[2]), len(match[3]), match[4]
        package = name.split(".")[0]
        by_package[package] = by_package.get(package, 0) + self_us
        if indent <= 1:
            top[name] = top.get(name, 0) + cumulative
    out = HERE / "warm.prof"
    subprocess.run(
        [sys.executable, "-P", "-m", "cProfile", "-o", str(out), *argv],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    import io
    import pstats

    text = io.StringIO()
    stats_ = pstats.Stats(str(out), stream=text)
    stats_.sort_stats("cumulative").print_stats(45)
    stats_.sort_stats("tottime").print_stats(25)
    (HERE / "warm-profile.txt").write_text(text.getvalue())
    return {
        "imports_top_ms": {k: v / 1000 for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:25]},
        "imports_self_by_package_ms": {
            k: v / 1000 for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])[:25]
        },
        "cprofile": str(HERE / "warm-profile.txt"),
    }


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds (medians of this many)")
    parser.add_argument(
        "--sbom-rounds",
        type=int,
        default=3,
        help="rounds that also run the sbom passes (100 processes each)",
    )
    parser.add_argument("--db", type=Path, default=DEFAULT_DB)
    parser.add_argument(
        "--rev",
        help="measure wasmctl/ as committed at this revision (a git-archive snapshot on "
        "PYTHONPATH) instead of the working tree",
    )
    parser.add_argument("--profile", action="store_true", help="also profile the warm audit")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    try:
        return run(args)
    except Failed as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    db: Path = args.db.resolve()
    if not (db / "crates.io" / "all.zip").is_file() or not (db / "Go" / "all.zip").is_file():
        raise Failed(f"no crates.io/all.zip and Go/all.zip under {db}")
    wasmctl = resolve_wasmctl()
    HERE.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    started = datetime.now(UTC)
    base = dict(os.environ)
    if args.rev:  # wasmctl from a snapshot of the commit, first on every process's path
        code_root, revision = snapshot(args.rev)
        sys.path.insert(0, str(code_root))
        base["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(code_root), base.get("PYTHONPATH")) if p
        )
        measured = f"{revision} (git archive of wasmctl/ at that commit)"
    else:
        code_root = ROOT
        dirty = git("status", "--porcelain", "--", "wasmctl")
        revision = git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")
        measured = f"{revision} (the working tree)"
    where = subprocess.run(
        [sys.executable, "-P", "-c", "import wasmctl; print(wasmctl.__file__)"],
        env=base,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not Path(where).is_relative_to(code_root / "wasmctl"):
        raise Failed(f"the processes would import wasmctl from {where}, not {code_root}")
    sources = source_digest(code_root)
    installed = environment_digest()

    print("== generating 100 modules (seeded)", file=sys.stderr)
    plans = plan_modules(record_candidates(db))
    write_modules(plans, MODULES)
    files = sorted(MODULES.glob("*.wasm"))
    if len(files) != RUST_MODULES + GO_MODULES:
        raise Failed(f"{len(files)} modules written")
    target = str(MODULES.relative_to(ROOT))  # as typed: benchmarks/.work/audit/modules

    print("== expected findings (the database read in full, no index)", file=sys.stderr)
    expected = expected_report(db, plans, target)

    base["COLUMNS"] = COLUMNS
    base.pop("PYTHONPYCACHEPREFIX", None)
    caches = HERE / "caches"
    if caches.exists():
        shutil.rmtree(caches)
    warm_cache, first_cache, empty_cache = caches / "warm", caches / "first", caches / "empty"
    for d in (warm_cache, empty_cache):
        d.mkdir(parents=True)
    index_dir = warm_cache / "wasmctl" / "osv-index"
    env_warm = {**base, "XDG_CACHE_HOME": str(warm_cache)}
    env_first = {**base, "XDG_CACHE_HOME": str(first_cache)}
    env_sbom = {**base, "XDG_CACHE_HOME": str(empty_cache)}
    pycache = HERE / "pycache"
    env_pyc = {**env_warm, "PYTHONPYCACHEPREFIX": str(pycache)}
    env_pyc.pop("PYTHONDONTWRITEBYTECODE", None)
    audit = [wasmctl, "audit", "--db", str(db), target]
    audit_json = [*audit[:-1], "--format", "json", target]
    stderr = HERE / "stderr.txt"

    print("== checking what is timed", file=sys.stderr)
    for what, env in (("first load", env_warm), ("warm", env_warm)):
        proc = subprocess.run(audit_json, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 1:
            raise Failed(f"{what}: audit exit {proc.returncode}, not 1:\n{proc.stderr[-2000:]}")
        check_report(json.loads(proc.stdout), expected, f"CLI audit, {what}")
        indexes = list(index_dir.glob("*.sqlite"))
        if len(indexes) != 1:
            raise Failed(f"{what}: {len(indexes)} indexes in {index_dir}, not 1")
    index_inode = indexes[0].stat().st_ino
    table = subprocess.run(audit, env=env_warm, capture_output=True, text=True, check=False)
    some_id = expected["findings"][0][2]
    if table.returncode != 1 or some_id not in table.stdout:
        raise Failed(f"table audit: exit {table.returncode}, {some_id} not in its output")
    for env in (env_pyc, env_pyc):  # compiles every module into the prefix, then uses it
        if spawn(audit, env, stderr).code != 1:
            raise Failed("audit with PYTHONPYCACHEPREFIX did not exit 1")
    for file in (files[0], files[-1]):  # a Rust module and a Go module
        proc = subprocess.run(
            [wasmctl, "sbom", str(file.relative_to(ROOT))],
            env=env_sbom,
            capture_output=True,
            text=True,
            check=False,
        )
        plan = next(p for p in plans if p.file == file.name)
        names = {c.get("name") for c in json.loads(proc.stdout).get("components", [])}
        if proc.returncode != 0 or not {n for n, _ in plan.packages} <= names:
            raise Failed(f"sbom {file.name}: exit {proc.returncode}, components missing")

    rounds: dict[str, list[Sample]] = {
        k: [] for k in ("first", "warm", "warm_json", "warm_pyc", "python")
    }
    sbom_rounds: dict[str, dict[str, list[float]]] = {
        k: {"total": [], "cpu": [], "each": []} for k in ("sbom", "sbom_no_rfc3987")
    }
    inproc: dict[str, list[dict[str, Any]]] = {"indexed": [], "full": [], "build": []}
    no_rfc = write_launcher(HERE / "bin" / "wasmctl-no-rfc3987", wasmctl)
    # Does `wasmctl sbom` import rfc3987_syntax (through jsonschema's format checks)? Only
    # then is the information pass without it worth its minutes.
    imports = subprocess.run(
        [
            sys.executable,
            "-P",
            "-X",
            "importtime",
            wasmctl,
            "sbom",
            str(files[0].relative_to(ROOT)),
        ],
        env=env_sbom,
        capture_output=True,
        text=True,
        check=False,
    ).stderr
    rfc3987 = bool(re.search(r"\|\s*rfc3987_syntax$", imports, re.MULTILINE))

    def first() -> None:
        if first_cache.exists():
            shutil.rmtree(first_cache)
        first_cache.mkdir()
        sample = spawn(audit, env_first, stderr)
        built = list((first_cache / "wasmctl" / "osv-index").glob("*.sqlite"))
        if sample.code != 1 or len(built) != 1:
            raise Failed(f"first load: exit {sample.code}, {len(built)} indexes written")
        rounds["first"].append(sample)

    def warm(kind: str, argv: list[str], env: dict[str, str]) -> None:
        sample = spawn(argv, env, stderr)
        if sample.code != 1:
            raise Failed(f"{kind}: exit {sample.code}: {stderr.read_text()[-1000:]}")
        if next(iter(index_dir.glob("*.sqlite"))).stat().st_ino != index_inode:
            raise Failed(f"{kind}: the index was written again")
        rounds[kind].append(sample)

    def sbom(kind: str, script: str) -> None:
        total = cpu = 0.0
        for file in files:
            sample = spawn([script, "sbom", str(file.relative_to(ROOT))], env_sbom, stderr)
            if sample.code != 0:
                raise Failed(f"{kind} {file.name}: exit {sample.code}: {stderr.read_text()[-800:]}")
            total += sample.wall
            cpu += sample.cpu
            sbom_rounds[kind]["each"].append(sample.wall)
        sbom_rounds[kind]["total"].append(total)
        sbom_rounds[kind]["cpu"].append(cpu)

    def child(mode: str) -> None:
        index = index_dir
        if mode == "build":
            index = caches / "inproc-build"
            if index.exists():
                shutil.rmtree(index)
        result = in_process(mode, db, target, index, base)
        if not Path(result.pop("file")).is_relative_to(code_root / "wasmctl"):
            raise Failed(f"in process ({mode}): wasmctl imported from elsewhere")
        runs_ = [v for k, v in result.items() if k != "import"]
        for run_ in [r for v in runs_ for r in (v if isinstance(v, list) else [v])]:
            if run_["findings"] != len(expected["findings"]) or run_["errors"]:
                raise Failed(
                    f"in process ({mode}): {run_['findings']} findings, {run_['errors']} errors"
                )
        inproc[mode].append(result)

    # The sbom passes (100 processes each, ~3.5 min on this machine) run in `--sbom-rounds`
    # of the rounds, spread over the run; everything else in every round.
    n_sbom = max(1, min(args.sbom_rounds, args.runs))
    sbom_at = {round(i * (args.runs - 1) / max(1, n_sbom - 1)) for i in range(n_sbom)}
    steps = [
        ("first", first),
        ("warm", lambda: warm("warm", audit, env_warm)),
        ("warm_json", lambda: warm("warm_json", audit_json, env_warm)),
        ("warm_pyc", lambda: warm("warm_pyc", audit, env_pyc)),
        (
            "python",
            lambda: rounds["python"].append(spawn([sys.executable, "-c", "pass"], base, stderr)),
        ),
        ("in process: indexed", lambda: child("indexed")),
        ("in process: full", lambda: child("full")),
        ("in process: build", lambda: child("build")),
    ]
    for r in range(args.runs):
        todo = steps + (
            [("sbom", lambda: sbom("sbom", wasmctl))]
            + ([("sbom, no rfc3987", lambda: sbom("sbom_no_rfc3987", no_rfc))] if rfc3987 else [])
            if r in sbom_at
            else []
        )
        order = todo[r % len(todo) :] + todo[: r % len(todo)]
        print(f"== round {r + 1}/{args.runs}: " + ", ".join(n for n, _ in order), file=sys.stderr)
        for _, step in order:
            step()
    print("== peak RSS (GNU time)", file=sys.stderr)
    rss = {
        "warm": peak_rss(audit, env_warm),
        "first": peak_rss(audit, env_first),
        "sbom": peak_rss([wasmctl, "sbom", str(files[0].relative_to(ROOT))], env_sbom),
        "python": peak_rss([sys.executable, "-c", "pass"], base),
    }
    load_after = os.getloadavg()[0]
    if source_digest(code_root) != sources:
        raise Failed("wasmctl/'s sources changed during the run: nothing is judged, run it again")
    if environment_digest() != installed:
        raise Failed("installed packages changed during the run: nothing is judged, run it again")

    wall = {k: stats([s.wall for s in v]) for k, v in rounds.items()}
    cpu = {k: stats([s.cpu for s in v]) for k, v in rounds.items()}
    sboms = {
        kind: {part: stats(values) for part, values in parts.items()}
        for kind, parts in sbom_rounds.items()
        if parts["total"]
    }

    def ip(mode: str, key: str, part: str) -> dict[str, float]:
        values = []
        for result in inproc[mode]:
            node = result[key]
            values += [n[part] for n in node] if isinstance(node, list) else [node[part]]
        return stats(values)

    inproc_stats = {
        "import": stats([r["import"] for rs in inproc.values() for r in rs]),
        **{
            f"{key}_{part}": ip(mode, key, part)
            for mode, keys in (
                ("indexed", ("indexed_cold", "indexed_warm")),
                ("full", ("full",)),
                ("build", ("build",)),
            )
            for key in keys
            for part in ("load", "audit", "total")
        },
    }
    warm_s = wall["warm"]["median"]
    sbom_total = sboms["sbom"]["total"]["median"]
    import wasmctl as package

    if not Path(package.__file__ or "").is_relative_to(code_root / "wasmctl"):
        raise Failed(f"this process imported wasmctl from {package.__file__}")

    results: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "context": {
            "git": revision,
            "measured": measured,
            "wasmctl": package.__version__,
            "python": platform.python_version(),
            "ncpu": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_after,
            "rounds": args.runs,
            "sbom_rounds": len(sbom_at),
            "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE"),
            # .pyc files in wasmctl/'s own __pycache__ (then the plain runs use them too)
            "wasmctl_pyc_files": len(list((code_root / "wasmctl").rglob("__pycache__/*.pyc"))),
            "wasmctl_sources_sha256": sources,
            "db": str(db),
            "wasmctl_script": wasmctl,
        },
        "input": {
            "modules": len(files),
            "rust": RUST_MODULES,
            "go": GO_MODULES,
            "deps_per_module": DEPS,
            "bytes": sum(f.stat().st_size for f in files),
            "seed": SEED,
            **{k: v for k, v in expected.items() if k not in ("findings", "targets")},
            "findings": len(expected["findings"]),
        },
        "target_s": TARGET_S,
        "warm_median_s": warm_s,
        "pass": warm_s <= TARGET_S,
        "noisy": wall["warm"]["rsd"] > NOISY_RSD,
        "ratio_warm_to_sbom_total": warm_s / sbom_total,
        "ratio_first_to_sbom_total": wall["first"]["median"] / sbom_total,
        "sbom_imports_rfc3987_syntax": rfc3987,
        "ratio_warm_to_sbom_no_rfc3987_total": (
            warm_s / sboms["sbom_no_rfc3987"]["total"]["median"] if rfc3987 else None
        ),
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mib": rss,
        "sbom_s": sboms,
        "in_process_s": inproc_stats,
        "in_process_raw": inproc,
        "samples": {k: [asdict(s) for s in v] for k, v in rounds.items()},
    }
    if args.profile:
        print("== profiling the warm audit", file=sys.stderr)
        results["profile"] = profile([wasmctl, *audit[1:]], env_warm)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    return 0


def report(r: dict[str, Any]) -> None:
    w, c, m = r["wall_s"], r["cpu_s"], r["peak_rss_mib"]
    ip = r["in_process_s"]
    inp = r["input"]

    def ms(x: float) -> str:
        return f"{x * 1000:,.0f} ms" if x < 10 else f"{x:,.1f} s"

    def mib(key: str) -> str:
        return f"{m[key]:.1f} MiB" if m.get(key) is not None else ""

    def row(name: str, key: str, rss: str = "") -> str:
        return (
            f"| {name} | {ms(w[key]['median'])} | {ms(w[key]['min'])} | "
            f"{ms(c[key]['median'])} | ±{w[key]['rsd'] * 100:.1f} % | {rss} |"
        )

    ctx = r["context"]
    print()
    print(
        f"wasmctl {ctx['wasmctl']} at {ctx['git']}, Python {ctx['python']}, {ctx['ncpu']} CPUs, "
        f"load {ctx['load_before']:.2f} before, {ctx['load_after']:.2f} after; "
        f"{ctx['rounds']} rounds, sbom in {ctx['sbom_rounds']}"
    )
    print(
        f"input: {inp['modules']} modules ({inp['rust']} Rust, {inp['go']} Go), "
        f"{inp['packages']} packages, {inp['findings']} findings of {inp['advisories']} "
        f"advisories ({inp['by_status']}; crates.io {inp['by_ecosystem']['crates.io']}, "
        f"Go {inp['by_ecosystem']['Go']}); {inp['planted']} planted affected packages"
    )
    print()
    print("| whole process | median | min | CPU (median) | spread (RSD) | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        row(
            "first load: `audit --db DB modules/`, empty cache (index build + audit)",
            "first",
            mib("first"),
        )
    )
    print(row("**warm: `audit --db DB modules/`** (table)", "warm", mib("warm")))
    print(row("warm, `--format json`", "warm_json"))
    print(row("warm, with .pyc (PYTHONPYCACHEPREFIX)", "warm_pyc"))
    print(row("`python -c pass`", "python", mib("python")))
    for kind, name in (  # the second only when sbom imports rfc3987_syntax
        ("sbom", "`wasmctl sbom MODULE`"),
        ("sbom_no_rfc3987", "`wasmctl sbom MODULE`, rfc3987_syntax blocked"),
    ):
        if kind not in r["sbom_s"]:
            continue
        t, each = r["sbom_s"][kind]["total"], r["sbom_s"][kind]["each"]
        print(
            f"| {name} {X} {inp['modules']}, total | {ms(t['median'])} | {ms(t['min'])} | "
            f"{ms(r['sbom_s'][kind]['cpu']['median'])} | ±{t['rsd'] * 100:.1f} % | "
            f"{mib('sbom') if kind == 'sbom' else ''} |"
        )
        print(f"| {name}, per module | {ms(each['median'])} | {ms(each['min'])} | | | |")
    print()
    print("| in process (medians) | load | audit | total |")
    print("|---|---:|---:|---:|")
    print(f"| import wasmctl.audit, wasmctl.audit.db | | | {ms(ip['import']['median'])} |")
    for name, key in (
        ("indexed, first in a fresh process", "indexed_cold"),
        ("indexed, again in the same process", "indexed_warm"),
        ("full read, no index (`index=False`)", "full"),
        ("index build (empty index directory)", "build"),
    ):
        print(
            f"| {name} | {ms(ip[key + '_load']['median'])} | "
            f"{ms(ip[key + '_audit']['median'])} | {ms(ip[key + '_total']['median'])} |"
        )
    print()
    verdict = ("PASS" if r["pass"] else "FAIL") + (" (NOISY)" if r["noisy"] else "")
    st = r["sbom_s"]["sbom"]["total"]["median"]
    print("| benchmark | measured | target | result |")
    print("|---|---:|---:|:---:|")
    print(
        f"| warm whole-process audit of {inp['modules']} modules, both databases | "
        f"**{ms(r['warm_median_s'])}** | ≤ 1 s | {verdict} |"
    )
    print(
        f"| first load (index build + audit), whole process | **{ms(w['first']['median'])}** "
        "| (report) | |"
    )
    print(
        f"| warm audit / cold sbom total | **{r['ratio_warm_to_sbom_total']:.4f}{X}** "
        f"({ms(r['warm_median_s'])} / {ms(st)}) | (report) | |"
    )
    print(f"| first load / cold sbom total | {r['ratio_first_to_sbom_total']:.4f}{X} | | |")
    if r["ratio_warm_to_sbom_no_rfc3987_total"] is not None:
        print(
            f"| warm audit / sbom total, rfc3987_syntax blocked | "
            f"{r['ratio_warm_to_sbom_no_rfc3987_total']:.4f}{X} | | |"
        )
    if "profile" in r:
        print("\nimports (cumulative, top level):")
        for k, v in list(r["profile"]["imports_top_ms"].items())[:15]:
            print(f"  {v:8.1f} ms  {k}")
        print("imports (self time by package):")
        for k, v in list(r["profile"]["imports_self_by_package_ms"].items())[:15]:
            print(f"  {v:8.1f} ms  {k}")
        print(f"cProfile: {r['profile']['cprofile']}")
    print(f"\nresults: {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
