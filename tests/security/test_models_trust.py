"""A model that runs code when loaded (a pickle, a TorchScript archive) is registered only
with an admin token: through loopml's API whatever the file is named and however the source
path is spelled, and through the MLflow API whatever flavor carries the pickle. A refused
registration (403) creates no model and no version; a registered pickle still loads only
with ``trusted=True``."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from loopml.errors import PermissionDenied

from .conftest import Server, refused

PICKLE = b"\x80\x04N."  # pickle.dumps(None): harmless here, never unpickled by the tests


def _registrations(server: Server) -> tuple[list[str], list[str]]:
    return ([m.name for m in server.client.list_registered_models()],
            [f"{v.model}/{v.version}" for m in server.client.list_registered_models()
             for v in server.client.list_model_versions(m.name)])


@pytest.mark.parametrize("package", [
    {"flavor_data": {"file": "model.pkl", "serializer": "pickle"}},
    {"flavor_data": {"file": "model.bin", "serializer": "pickle"}},  # named to pass
    {"flavor_data": {"file": "model.skops", "serializer": "skops"},
     "files": {"model.skops": b"PK", "helpers/extra.JOBLIB": PICKLE}},
    {"flavor": "pytorch", "flavor_data": {"file": "model.pt", "format": "torchscript"}},
    {"flavor": "pytorch", "flavor_data": {"file": "model.pt2", "format": "exported"}},
], ids=["pkl", "disguised", "extra-joblib", "torchscript", "exported"])
def test_loopml_api_registers_code_at_load_only_for_an_admin(server: Server,
                                                             package: dict[str, Any]) -> None:
    _, run_id = server.run()
    server.log_package(run_id, "model", **package)
    name = f"trust-{package['flavor_data']['file'].replace('.', '-')}-{run_id[:6]}"
    sources = [f"runs:/{run_id}/model", f"runs:/{run_id}/model/", f"runs:/{run_id}/./model",
               f"runs:/{run_id}/x/../model"]
    with server.unchanged():
        for source in sources:
            body = refused(server.request("POST", f"/api/v1/models/{name}/versions",
                                          {"source": source}, role="editor"), 403)
            assert "runs code when loaded" in body["message"] and "admin" in body["message"]
    version = server.json("POST", f"/api/v1/models/{name}/versions",
                          {"source": sources[0]}, role="admin", expect=201)
    assert version["version"] == 1


def test_a_safe_package_is_registered_by_an_editor(server: Server) -> None:
    _, run_id = server.run()
    server.log_package(run_id, "model", files={"model.skops": b"PK", "state.pt": b"PK"})
    server.json("POST", "/api/v1/models/trust-safe/versions",
                {"source": f"runs:/{run_id}/model"}, role="editor", expect=201)


def test_a_pickle_registered_by_an_admin_loads_only_when_trusted(server: Server) -> None:
    _, run_id = server.run()
    server.log_package(run_id, "model", flavor_data={"file": "model.pkl",
                                                     "serializer": "pickle"},
                       files={"model.pkl": PICKLE})
    server.json("POST", "/api/v1/models/trust-load/versions",
                {"source": f"runs:/{run_id}/model"}, role="admin", expect=201)
    with pytest.raises(PermissionDenied, match="trusted=True"):
        server.client.load_model("models:/trust-load/1")


# -- the MLflow API ---------------------------------------------------------------------------

def _mlmodel(flavors: dict[str, Any]) -> bytes:
    text: str = yaml.safe_dump({"flavors": flavors, "mlflow_version": "3.17.2",
                                "utc_time_created": "2026-01-01 00:00:00.000000"})
    return text.encode()


def _mlflow_version(server: Server, name: str, files: dict[str, bytes], *,
                    role: str) -> Any:
    experiment, run_id = server.run()
    base = f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run_id}/artifacts/model"
    for file, content in files.items():
        server.json("PUT", f"{base}/{file}", content, role="editor")
    api = "/api/2.0/mlflow"
    if server.request("GET", f"{api}/registered-models/get?name={name}").status == 404:
        server.json("POST", f"{api}/registered-models/create", {"name": name}, role="editor")
    return server.request("POST", f"{api}/model-versions/create",
                          {"name": name, "source": f"runs:/{run_id}/model",
                           "run_id": run_id}, role=role)


CLOUDPICKLE = {"MLmodel": _mlmodel({
    "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
    "sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}}),
    "model.pkl": PICKLE}


def test_mlflow_api_registers_a_pickled_model_only_for_an_admin(server: Server) -> None:
    before = _registrations(server)
    answer = _mlflow_version(server, "trust-mlflow", CLOUDPICKLE, role="editor")
    assert refused(answer, 403)["error_code"] == "PERMISSION_DENIED"
    assert _registrations(server)[1] == before[1]
    answer = _mlflow_version(server, "trust-mlflow", CLOUDPICKLE, role="admin")
    assert answer.status == 200, answer.body
    assert answer.json()["model_version"]["version"] == "1"


def test_mlflow_api_refuses_a_pickle_beside_a_skops_model(server: Server) -> None:
    """The sklearn flavor names a skops file, but the package also carries a pickle that
    MLflow's own loader would unpickle (``python_function`` with a ``python_model``)."""
    import skops.io as sio

    files = {"MLmodel": _mlmodel({
        "python_function": {"loader_module": "mlflow.pyfunc.model",
                            "python_model": "python_model.pkl",
                            "cloudpickle_version": "3.1.1"},
        "sklearn": {"pickled_model": "model.skops", "serialization_format": "skops"}}),
        "model.skops": sio.dumps({"coef": [1.0, 2.0]}), "python_model.pkl": PICKLE}
    safe = {"MLmodel": _mlmodel({
        "sklearn": {"pickled_model": "model.skops", "serialization_format": "skops"}}),
        "model.skops": files["model.skops"]}
    assert _mlflow_version(server, "trust-skops", safe, role="editor").status == 200
    before = _registrations(server)
    refused(_mlflow_version(server, "trust-skops", files, role="editor"), 403)
    assert _registrations(server) == before
