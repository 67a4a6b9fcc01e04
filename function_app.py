"""The Functions app: a thin registry of HTTP endpoints, the export orchestrator and its activities.

Runs unchanged under Azure Functions Core Tools (`func start`), in Azure, and on the local host
(`python -m devhost`). Each module registered here only translates between the runtime and `shared/`.
"""

import azure.durable_functions as df
import azure.functions as func

from endpoints import dicomweb

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(dicomweb.bp)
