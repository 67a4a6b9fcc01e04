"""The Functions app: a thin registry of HTTP endpoints, the export orchestrator and its activities.

Runs unchanged under Azure Functions Core Tools (`func start`), in Azure, and on the local host
(`python -m devhost`). Each module registered here only translates between the runtime and `shared/`.
"""

import azure.durable_functions as df
import azure.functions as func

from activities import export as export_activities
from activities import lanes as lane_activities
from activities import notify as notify_activities
from endpoints import dicomweb, openapi, operations, search
from endpoints import export as export_endpoints
from orchestrations import export as export_orchestration
from orchestrations import notify as notify_orchestration

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(dicomweb.bp)
app.register_functions(export_endpoints.bp)
app.register_functions(operations.bp)
app.register_functions(search.bp)
app.register_functions(openapi.bp)
app.register_functions(export_orchestration.bp)
app.register_functions(export_activities.bp)
app.register_functions(lane_activities.bp)
app.register_functions(notify_orchestration.bp)
app.register_functions(notify_activities.bp)
