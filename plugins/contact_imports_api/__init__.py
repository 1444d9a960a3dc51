"""The upload API and the Contact imports page: a FastAPI app (`contact_imports_api.app`)
that contact_imports_plugin.py registers with Airflow's API server. Modules:

app              the FastAPI app: routers, the page, the offline OpenAPI page
auth             who is calling (Airflow's auth manager) and what they may do
cdp              the library's Context for this process (Airflow connection `cdp_default`)
uploads          multipart uploads streamed to storage with the size limit
airflow_client   calls to Airflow's REST API with the caller's token
schemas          the response models (OpenAPI)
sweep            statuses follow DAG runs failed in Airflow (a thread per process)
docs             Swagger UI from an installed package, not a CDN
routes/          the routes: imports, templates
"""
