# The image docker-compose.yaml builds (the official compose file's `build: .` option):
# Airflow's official image plus this project, so that the DAGs, the plugin and the
# `contact-import` command import `contact_import` in every Airflow container.
# tests/unit/test_docker_compose.py checks that this tag follows the apache-airflow pin in
# requirements.txt and the Python version requirements.txt was compiled for.
FROM apache/airflow:3.3.2-python3.11

# Everything pinned in requirements.txt: the set `make setup` installs and the tests run
# against (apache-airflow-providers-amazon[s3fs] for s3:// storage, the Celery provider,
# psycopg2, Great Expectations, ...). `apache-airflow==${AIRFLOW_VERSION}` is named as
# Airflow's image docs ask, so pip can never move Airflow off the image's version.
# requirements.txt is a complete resolution of its own, so the image's ~/constraints.txt is
# not applied on top (it would refuse every pin that differs); the pins win over the
# versions the image came with (pip may then warn that providers this project does not use,
# such as google's, asked for other versions). pip runs as the image's `airflow` user
# (its ~/.local), as the image requires.
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" \
        "apache-airflow-providers-amazon[s3fs]" \
        -r /opt/airflow/requirements.txt

# The project itself, editable from /opt/airflow: config.project_root() is then
# /opt/airflow, where expectations/ and examples/ are, and docker-compose.yaml can mount
# the checkout's include/, dags/, plugins/ and expectations/ over these copies.
COPY --chown=airflow:0 pyproject.toml /opt/airflow/pyproject.toml
COPY --chown=airflow:0 include /opt/airflow/include
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 expectations /opt/airflow/expectations
COPY --chown=airflow:0 examples /opt/airflow/examples
RUN pip install --no-cache-dir --no-deps -e /opt/airflow \
    && python -c "import airflow, contact_import, s3fs, airflow.providers.amazon.aws.fs.s3, airflow.providers.celery; \
assert airflow.__version__ == '${AIRFLOW_VERSION}', airflow.__version__" \
    && contact-import --help > /dev/null
