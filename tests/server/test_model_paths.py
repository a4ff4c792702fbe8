"""A server does not let clients name files by path: no reading of arbitrary files, no probing."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import aiohttp

from tests.server.conftest import StartServer


async def test_requests_may_not_name_model_files_by_path(start_server: StartServer, tiny: dict[str, Path],
                                                         tmp_path: Path) -> None:
    server = await start_server(model_paths=False)
    not_a_model = tmp_path / "secret.txt"
    not_a_model.write_text("not a model")
    answers = []
    async with aiohttp.ClientSession() as http:
        for name in (str(tiny["embed"]), str(not_a_model), "/etc/passwd", str(tmp_path / "missing.gguf"), "~/x.gguf"):
            async with http.post(server.v1 + "/embeddings", json={"model": name, "input": "hi"}) as response:
                body = await response.json()
                answers.append((response.status, body["error"]["code"], body["error"]["message"].replace(name, "X")))
            async with http.get(server.v1 + "/models/" + name.lstrip("/")) as response:
                assert response.status == 404
        # the server's own model (a path the operator chose) still serves
        async with http.post(server.v1 + "/completions", json={"model": str(tiny["chat"]), "prompt": "hi",
                                                                "max_tokens": 2}) as response:
            assert response.status == 200
    assert {answer for answer in answers} == {answers[0]}  # the same answer whether the file exists or not
    assert answers[0][:2] == (404, "model_not_found")
    assert "by path are turned off" in answers[0][2]


async def test_model_listings_do_not_show_file_locations(start_server: StartServer) -> None:
    server = await start_server()
    async with aiohttp.ClientSession() as http:
        async with http.post(server.v1 + "/completions", json={"prompt": "hi", "max_tokens": 1}) as response:
            assert response.status == 200
        async with http.get(server.v1 + "/models") as response:
            listing = await response.json()
        async with http.get(server.v1 + "/models/" + quote(listing["data"][0]["id"], safe="")) as response:
            assert response.status == 200
            one = await response.json()
    for model in [*listing["data"], one]:
        assert "path" not in model["capabilities"]
