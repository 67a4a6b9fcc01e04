"""Test-only app for the local host's HTTP behaviour: routes, methods, bodies, errors, keys."""

import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="echo/{name}/{id:int?}", methods=["GET", "POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({
        "method": req.method, "url": req.url, "route": dict(req.route_params),
        "params": dict(req.params), "header": req.headers.get("x-test"),
        "body": req.get_body().decode("latin-1"),
    }), mimetype="application/json")


@app.route(route="echo/special", methods=["GET"])
def special(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("literal wins", status_code=200)


@app.route(route="public", auth_level=func.AuthLevel.ANONYMOUS)
async def public(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(b"\x00\x01", mimetype="application/octet-stream", headers={"X-Kind": "async"})


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("the function failed on purpose")


@app.route(route="setting")
def setting(req: func.HttpRequest) -> func.HttpResponse:
    import os
    return func.HttpResponse(os.environ.get(req.params.get("name", ""), "<unset>"))


@app.route(route="client", methods=["GET"])
@app.durable_client_input(client_name="client")
async def client(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(client.create_http_management_payload("abc")), mimetype="application/json")


@app.route(route="inspect", methods=["GET", "POST"])
def inspect(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({
        "url": req.url, "params": dict(req.params), "headers": dict(req.headers), "body": len(req.get_body()),
    }), mimetype="application/json")
