"""The bootstrap SSM Command document: ssm_documents/bootstrap.yaml with bootstrap.sh injected.

The CDK stack and local mode both pass `render_bootstrap_document(repo_root)` to SSM as the
document's content (CreateDocument, DocumentType Command, DocumentFormat JSON after
`json.dumps`), and build the parameters of a SendCommand with `command_parameters`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Final

import yaml

from petal.deployment_contract import SSM_BOOTSTRAP_SCRIPT, SSM_DOCUMENT_FILE

# The runCommand line bootstrap.yaml holds in place of the script, and the here-document
# delimiter around it (no line of the script may equal it).
SCRIPT_PLACEHOLDER: Final = "__PETAL_BOOTSTRAP_SCRIPT__"
HEREDOC_DELIMITER: Final = "PETAL_BOOTSTRAP_EOF"

# SSM limits a document's content, together with the parameter values of a command, to 64 KB.
DOCUMENT_SIZE_LIMIT: Final = 64 * 1024

# The document's parameters.
PARAM_VOLUME_ID: Final = "VolumeId"
PARAM_MOUNT_DIR: Final = "MountDir"
PARAM_SPACK_VERSION: Final = "SpackVersion"
PARAM_SPACK_YAML: Final = "SpackYamlBase64"
PARAM_BUILD_ID: Final = "BuildId"
PARAM_FINGERPRINT: Final = "Fingerprint"
PARAM_HEARTBEAT_SECONDS: Final = "HeartbeatSeconds"
PARAM_EXECUTION_TIMEOUT: Final = "ExecutionTimeout"


def render_bootstrap_document(repo_root: Path) -> dict[str, Any]:
    """Load bootstrap.yaml and put bootstrap.sh's lines where its placeholder line is."""
    document = yaml.safe_load((repo_root / SSM_DOCUMENT_FILE).read_text(encoding="utf-8"))
    script = (repo_root / SSM_BOOTSTRAP_SCRIPT).read_text(encoding="utf-8")
    script_lines = script.splitlines()
    # SSM would substitute "{{ ... }}" inside the script; a line equal to the delimiter
    # would end the here-document early.
    if "{{" in script:
        raise ValueError(f"{SSM_BOOTSTRAP_SCRIPT} must not contain '{{{{'")
    if HEREDOC_DELIMITER in (line.strip() for line in script_lines):
        raise ValueError(f"{SSM_BOOTSTRAP_SCRIPT} must not contain a {HEREDOC_DELIMITER} line")
    if not isinstance(document, dict):
        raise ValueError(f"{SSM_DOCUMENT_FILE} is not a mapping")

    injected = 0
    for step in document.get("mainSteps", []):
        commands = step.get("inputs", {}).get("runCommand")
        if not isinstance(commands, list):
            continue
        rendered: list[str] = []
        for line in commands:
            if line == SCRIPT_PLACEHOLDER:
                rendered.extend(script_lines)
                injected += 1
            else:
                rendered.append(line)
        step["inputs"]["runCommand"] = rendered
    if injected != 1:
        raise ValueError(f"{SSM_DOCUMENT_FILE} must hold {SCRIPT_PLACEHOLDER} exactly once")
    return document


def document_size(document: dict[str, Any]) -> int:
    """The size in bytes of the document's content as SSM stores it (compact JSON)."""
    return len(json.dumps(document, separators=(",", ":")).encode("utf-8"))


def parameter_budget(document: dict[str, Any]) -> int:
    """Bytes left for a command's parameter values (SpackYamlBase64 above all)."""
    return DOCUMENT_SIZE_LIMIT - document_size(document)


def command_parameters(
    *,
    volume_id: str,
    spack_version: str,
    spack_yaml: str,
    build_id: str,
    fingerprint: str,
    execution_timeout_seconds: int,
    heartbeat_seconds: int = 300,
) -> dict[str, list[str]]:
    """The Parameters of an ssm.send_command of the bootstrap document."""
    return {
        PARAM_VOLUME_ID: [volume_id],
        PARAM_MOUNT_DIR: ["/shared"],
        PARAM_SPACK_VERSION: [spack_version],
        PARAM_SPACK_YAML: [base64.b64encode(spack_yaml.encode("utf-8")).decode("ascii")],
        PARAM_BUILD_ID: [build_id],
        PARAM_FINGERPRINT: [fingerprint],
        PARAM_HEARTBEAT_SECONDS: [str(heartbeat_seconds)],
        PARAM_EXECUTION_TIMEOUT: [str(execution_timeout_seconds)],
    }
