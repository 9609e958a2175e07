"""The bootstrap SSM Command document: ssm_documents/bootstrap.yaml with bootstrap.sh and
bootstrap_helper.py injected (the builder has no copy of the repository).

Each file travels gzip-compressed and base64-encoded in a here-document that the
document decodes on the builder: SSM limits a document and a command's parameter values
together to 64 KB, and the two files as text take more than that. Encoded, nothing in a
file can reach SSM's "{{ }}" substitution or end its here-document, and the builder gets
the file's exact bytes.

The CDK stack and local mode both pass `render_bootstrap_document(repo_root)` to SSM as the
document's content (CreateDocument, DocumentType Command, DocumentFormat JSON after
`json.dumps`), and build the parameters of a SendCommand with `command_parameters`.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any, Final

from petal.deployment_contract import SSM_BOOTSTRAP_SCRIPT, SSM_DOCUMENT_FILE

# The Python helper bootstrap.sh runs with `spack python`.
BOOTSTRAP_HELPER_FILE: Final = "ssm_documents/bootstrap_helper.py"

# The runCommand lines bootstrap.yaml holds in place of the script and of the helper, and
# the delimiters of the here-documents around them there.
SCRIPT_PLACEHOLDER: Final = "__PETAL_BOOTSTRAP_SCRIPT__"
HEREDOC_DELIMITER: Final = "PETAL_BOOTSTRAP_EOF"
HELPER_PLACEHOLDER: Final = "__PETAL_BOOTSTRAP_HELPER__"
HELPER_HEREDOC_DELIMITER: Final = "PETAL_HELPER_EOF"
# placeholder -> the file, relative to the repository root
INJECTED_FILES: Final[dict[str, str]] = {
    SCRIPT_PLACEHOLDER: SSM_BOOTSTRAP_SCRIPT,
    HELPER_PLACEHOLDER: BOOTSTRAP_HELPER_FILE,
}

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
PARAM_PARENT_SNAPSHOT: Final = "ParentSnapshot"


# The length of an encoded line, as base64(1) writes them.
ENCODED_LINE_LENGTH: Final = 76


def injected_lines(repo_root: Path, path: str) -> list[str]:
    """The here-document lines that carry a file: its gzip (without a timestamp, so the
    document is the same at every synth) in base64."""
    compressed = gzip.compress((repo_root / path).read_bytes(), compresslevel=9, mtime=0)
    encoded = base64.b64encode(compressed).decode("ascii")
    return [
        encoded[at : at + ENCODED_LINE_LENGTH] for at in range(0, len(encoded), ENCODED_LINE_LENGTH)
    ]


def render_bootstrap_document(repo_root: Path) -> dict[str, Any]:
    """Load bootstrap.yaml and put the encoded lines of each file where its placeholder is."""
    import yaml  # here: the bootstrap handler needs only command_parameters

    document = yaml.safe_load((repo_root / SSM_DOCUMENT_FILE).read_text(encoding="utf-8"))
    injected = {
        placeholder: injected_lines(repo_root, path) for placeholder, path in INJECTED_FILES.items()
    }
    if not isinstance(document, dict):
        raise ValueError(f"{SSM_DOCUMENT_FILE} is not a mapping")

    found = dict.fromkeys(injected, 0)
    for step in document.get("mainSteps", []):
        commands = step.get("inputs", {}).get("runCommand")
        if not isinstance(commands, list):
            continue
        rendered: list[str] = []
        for line in commands:
            if isinstance(line, str) and line in injected:
                rendered.extend(injected[line])
                found[line] += 1
            else:
                rendered.append(line)
        step["inputs"]["runCommand"] = rendered
    for placeholder, count in found.items():
        if count != 1:
            raise ValueError(f"{SSM_DOCUMENT_FILE} must hold {placeholder} exactly once")
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
    parent_snapshot: str = "",
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
        # "" (an empty volume) is a value SSM accepts: the parameter's default.
        PARAM_PARENT_SNAPSHOT: [parent_snapshot],
    }
