"""Serving a checkpoint over HTTP (`python -m src.serve`): the LitServe API, its request guard, the web page
and a small client.

- `api.py`: `ClassifierAPI`, the LitServe `LitAPI` (decode an upload, batch, predict, answer JSON);
- `guard.py`: `PredictGuard`, the checks made before a request reaches the model (API key, size, type);
- `server.py`: `build_server`, the `LitServer` with the page at `GET /` and the checkpoint's `/info`;
- `page.html`: the web page (static HTML and JavaScript, nothing fetched from elsewhere);
- `client.py`: `post_image`, a standard-library client (tests, benchmark, scripts).
"""
