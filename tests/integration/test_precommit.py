"""The pre-commit hook (`.pre-commit-hooks.yaml`), run by pre-commit itself.

pre-commit installs a hook repository from a commit, so the tests commit a copy of this
working tree (tracked and new files, .gitignore respected) to a scratch repository: the hook
is tested as it is now, before it is committed here. `try-repo` cannot pass hook `args`, so
a consumer project names the scratch repository in its `.pre-commit-config.yaml`, as a user
would, with `args: [--preset, no-network]`.

pre-commit builds one virtualenv and pip-installs wasmctl into it (from PyPI, through pip's
cache); the module shares it between tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
MODULES = ROOT / "examples" / "modules"
INSTALL_TIMEOUT = 600


@dataclass(frozen=True)
class HookRepo:
    path: Path
    rev: str
    env: Mapping[str, str]


def _git(env: Mapping[str, str], cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def _isolated_env(home: Path) -> dict[str, str]:
    # No user or system git config (hooks, signing); pre-commit's cache in the test's home.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    global_config = home / "gitconfig"
    global_config.touch()
    return {
        **env,
        "GIT_CONFIG_GLOBAL": str(global_config),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "wasmctl tests",
        "GIT_AUTHOR_EMAIL": "tests@wasmctl.invalid",
        "GIT_COMMITTER_NAME": "wasmctl tests",
        "GIT_COMMITTER_EMAIL": "tests@wasmctl.invalid",
        "PRE_COMMIT_HOME": str(home / "pre-commit-cache"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "NO_COLOR": "1",
    }


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookRepo]:
    """This working tree, committed to a scratch repository."""
    base = tmp_path_factory.mktemp("precommit")
    env = _isolated_env(base)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    repo = base / "wasmctl"
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is skipped
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    _git(env, repo, "init", "--quiet", "--initial-branch=main")
    _git(env, repo, "add", "--all")
    _git(env, repo, "commit", "--quiet", "--no-verify", "-m", "snapshot for the hook tests")
    yield HookRepo(repo, _git(env, repo, "rev-parse", "HEAD"), env)


def _run_hook(hook_repo: HookRepo, project: Path, module: Path) -> subprocess.CompletedProcess[str]:
    """`pre-commit run` in a fresh project holding `module`, the hook configured as a user would."""
    project.mkdir()
    _git(hook_repo.env, project, "init", "--quiet", "--initial-branch=main")
    (project / ".pre-commit-config.yaml").write_text(
        "repos:\n"
        f"  - repo: {hook_repo.path}\n"
        f"    rev: {hook_repo.rev}\n"
        "    hooks:\n"
        "      - id: wasmctl-scan\n"
        "        args: [--preset, no-network]\n",
        encoding="utf-8",
    )
    shutil.copy2(module, project / module.name)
    _git(hook_repo.env, project, "add", "--all")
    return subprocess.run(
        ["pre-commit", "run", "--verbose", "--files", module.name],
        cwd=project,
        env=hook_repo.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=INSTALL_TIMEOUT,
    )


@pytest.fixture(autouse=True)
def _pre_commit_installed() -> None:
    if shutil.which("pre-commit") is None:
        pytest.fail("pre-commit is not installed (pip install pre-commit)")


def test_the_hook_denies_a_module_that_imports_sockets(hook_repo: HookRepo, tmp_path: Path) -> None:
    result = _run_hook(hook_repo, tmp_path / "project", MODULES / "echo_server.wasm")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "sock_accept" in output
    assert "Failed" in output


def test_the_hook_passes_a_module_without_network_imports(
    hook_repo: HookRepo, tmp_path: Path
) -> None:
    result = _run_hook(hook_repo, tmp_path / "project", MODULES / "hello.wasm")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # --verbose shows wasmctl's report: the binary file was scanned, not skipped.
    assert "1 allowed" in output


def test_the_hook_manifest_is_valid() -> None:
    result = subprocess.run(
        ["pre-commit", "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_try_repo_denies_sockets_with_the_no_network_hook(
    hook_repo: HookRepo, tmp_path: Path
) -> None:
    """`pre-commit try-repo`, as a user trying the hook before adopting it."""
    project = tmp_path / "project"
    project.mkdir()
    _git(hook_repo.env, project, "init", "--quiet", "--initial-branch=main")
    for name in ("echo_server.wasm", "hello.wasm"):
        shutil.copy2(MODULES / name, project / name)
    _git(hook_repo.env, project, "add", "--all")

    def try_repo(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pre-commit", "try-repo", str(hook_repo.path), "wasmctl-scan-no-network",
             "--ref", hook_repo.rev, "--verbose", "--files", *files],
            cwd=project, env=hook_repo.env, capture_output=True, text=True, check=False,
            timeout=INSTALL_TIMEOUT,
        )  # fmt: skip

    denied = try_repo("echo_server.wasm")
    assert denied.returncode == 1, denied.stdout + denied.stderr
    assert "sock_accept" in denied.stdout + denied.stderr
    allowed = try_repo("hello.wasm")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
