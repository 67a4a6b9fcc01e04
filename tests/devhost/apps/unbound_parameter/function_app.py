"""Test-only app that Azure's worker refuses: a parameter without a binding."""

import azure.functions as func

app = func.FunctionApp()


@app.route(route="hello")
def hello(req: func.HttpRequest, other: str) -> func.HttpResponse:
    return func.HttpResponse("never served")
