"""Test-only app that Azure's worker refuses: the orchestrator's context_name is not its parameter's name."""

import azure.durable_functions as df

app = df.DFApp()


@app.orchestration_trigger(context_name="ctx")
def orchestrator(context: df.DurableOrchestrationContext):
    yield context.call_activity("nothing", None)
