"""The `contact-import` command (README.md, "Command line")."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from . import (api_client, config, context, db, export, heartbeat, import_folder, imports, intake, local_airflow,
               sample_file, statuses, workspaces)
from .channels import CHANNELS, TAG_MODES
from .errors import WARNING, normalise_lang
from .reports import count_by_code, write_report

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_CANCELLED, EXIT_FAILED = 0, 1, 2, 3, 4
IMPORT_EXIT = {statuses.COMPLETED: EXIT_OK, statuses.VALIDATION_FAILED: EXIT_INVALID,
               statuses.CANCELLED: EXIT_CANCELLED}


class UsageError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.db = getattr(args, "db", None) or args.top_db
    args.json = getattr(args, "json", False) or args.top_json
    try:
        return args.func(args)
    except (UsageError, workspaces.WorkspaceFileError, LookupError, ValueError) as exc:
        print(f"contact-import: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `contact-import export | head`
        sys.stderr.close()
        return EXIT_OK
    except db.psycopg2.OperationalError as exc:
        print(f"contact-import: cannot reach the CDP database: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    # --db and --json may stand before or after the command: the command's own copies are
    # SUPPRESSed when absent, and main() falls back to the top-level ones.
    parser = argparse.ArgumentParser(prog="contact-import", description=__doc__)
    parser.add_argument("--db", dest="top_db", help="CDP database URL (default: $CDP_DATABASE_URL,"
                        " else the embedded server)")
    parser.add_argument("--json", dest="top_json", action="store_true", help="print one JSON object on stdout")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    dbp = commands.add_parser("db", help="database schema", parents=[common])
    dbp.add_argument("action", choices=["upgrade"])
    dbp.set_defaults(func=cmd_db)

    wsp = commands.add_parser("workspace", help="workspaces", parents=[common])
    wsp.add_argument("action", choices=["apply"])
    wsp.add_argument("file")
    wsp.set_defaults(func=cmd_workspace)

    tpl = commands.add_parser("template", help="print the sample CSV", parents=[common])
    tpl.add_argument("channel", choices=list(CHANNELS))
    tpl.add_argument("--tag-mode", choices=TAG_MODES, default="append")
    tpl.add_argument("--workspace")
    tpl.set_defaults(func=cmd_template)

    for name, func in (("validate", cmd_validate), ("import", cmd_import)):
        sub = commands.add_parser(name, parents=[common])
        sub.add_argument("file")
        sub.add_argument("--workspace", required=True)
        sub.add_argument("--channel", required=True, choices=list(CHANNELS))
        sub.add_argument("--tag-mode", choices=TAG_MODES, default="append")
        sub.add_argument("--mapping", help='JSON {"file header": "field or attribute key" | null}')
        sub.add_argument("--complete-local-phones", action="store_true",
                         help="complete numbers written without their country code (0912 345 678) with the"
                              " workspace's default_region, each listed as a phone_completed warning")
        sub.add_argument("--lang", default=os.environ.get("LANG", "en"), help="report language: en or zh-TW")
        sub.add_argument("--max-errors", type=int, default=None,
                         help="rows written to the error report (exact counts per code are always given)")
        if name == "validate":
            sub.add_argument("--report-dir", help="where the error and warning reports are written")
        else:
            sub.add_argument("--require-approval", action="store_true")
        sub.set_defaults(func=func)

    st = commands.add_parser("status", help="one import, or the list", parents=[common])
    st.add_argument("import_id", nargs="?")
    st.add_argument("--workspace")
    st.set_defaults(func=cmd_status)

    re_ = commands.add_parser("resume", help="go on with an interrupted import, or give it up", parents=[common])
    re_.add_argument("import_id")
    re_.add_argument("--give-up", action="store_true",
                     help=f"end it failed instead ({heartbeat.GIVE_UP_MESSAGE!r})")
    re_.set_defaults(func=cmd_resume)

    ca = commands.add_parser("cancel", help="cancel a waiting or running import", parents=[common])
    ca.add_argument("import_id")
    ca.set_defaults(func=cmd_cancel)

    ex = commands.add_parser("export", help="every contact with profile, tags and binding", parents=[common])
    ex.add_argument("--workspace", required=True)
    ex.add_argument("--channel", choices=list(CHANNELS))
    ex.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    ex.set_defaults(func=cmd_export)
    return parser


def _context(args) -> context.Context:
    return context.for_command_line(args.db)


def _emit(args, payload: dict, text: str) -> None:
    print(json.dumps(payload, ensure_ascii=False, default=str) if args.json else text)


def _mapping(args) -> dict | None:
    if not args.mapping:
        return None
    try:
        value = json.loads(Path(args.mapping).read_text() if Path(args.mapping).is_file() else args.mapping)
    except (json.JSONDecodeError, OSError) as exc:
        raise UsageError(f"--mapping is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError('--mapping must be a JSON object {"file header": "field" | null}')
    return value


def cmd_db(args) -> int:
    from . import migrate  # Alembic and SQLAlchemy: a second of imports no other command needs

    revision = migrate.upgrade(_context(args).cdp_url)
    _emit(args, {"revision": revision}, f"cdp schema at revision {revision}")
    return EXIT_OK


def cmd_workspace(args) -> int:
    spec = workspaces.load_file(args.file)
    with db.transaction(_context(args).cdp_url) as conn:
        ws = workspaces.apply(conn, spec)
    _emit(args, {"workspace": ws.slug, "id": ws.id}, f"workspace {ws.slug} applied")
    return EXIT_OK


def cmd_template(args) -> int:
    ws, attrs = None, None
    if args.workspace:
        with db.transaction(_context(args).cdp_url) as conn:
            ws = workspaces.get(conn, args.workspace)
            attrs = workspaces.attributes(conn, ws.id)
    sys.stdout.write(sample_file.render(args.channel, args.tag_mode, ws, attrs))
    return EXIT_OK


def cmd_validate(args) -> int:
    source = Path(args.file)
    if not source.is_file():
        raise UsageError(f"no such file: {args.file}")
    from . import stages  # pandas and Great Expectations: only the commands that validate load them

    ctx = _context(args)
    lang = normalise_lang(args.lang)
    with tempfile.TemporaryDirectory(prefix="contact-import-") as tmp, db.transaction(ctx.cdp_url) as conn:
        ws = workspaces.get(conn, args.workspace)
        intake.check_workspace_options(ws, args.complete_local_phones)
        check = stages.check_file(conn, ctx.cdp_url, ws, args.channel, args.tag_mode, source, Path(tmp), _mapping(args),
                                  complete_local_phones=args.complete_local_phones)
        report_dir = Path(args.report_dir) if args.report_dir else source.parent
        report = report_dir / f"{source.stem}.errors.csv" if check.errors else None
        if report:
            write_report(check.errors, report, lang, limit=args.max_errors or config.max_report_errors())
        docs = Path(tmp) / import_folder.DATA_DOCS
        data_docs = report_dir / f"{source.stem}.data_docs.html" if report and docs.exists() else None
        if data_docs:
            shutil.copyfile(docs, data_docs)
        warned = [i for i in check.issues if i.severity == WARNING]
        warnings_report = report_dir / f"{source.stem}.warnings.csv" if warned else None
        if warnings_report:
            write_report(warned, warnings_report, lang)
    payload = {"import_id": None, "status": "valid" if not check.errors else statuses.VALIDATION_FAILED,
               "encoding": check.encoding, "delimiter": check.delimiter, "rows": check.rows,
               "errors": len(check.errors), "errors_by_code": count_by_code(check.issues),
               "error_report": str(report) if report else None,
               "data_docs": str(data_docs) if data_docs else None, "warnings": check.warnings(),
               "warnings_report": str(warnings_report) if warnings_report else None,
               "preview": check.preview}
    if args.json:
        _emit(args, payload, "")
    else:
        print(f"{source.name}: {check.rows if check.rows is not None else '?'} rows, encoding {check.encoding},"
              f" delimiter {check.delimiter!r}")
        for issue in sorted(check.errors, key=lambda i: i.row or 0)[:20]:
            print(f"  row {issue.row}: {issue.column}: {issue.message(lang)} [{issue.code}]")
        if check.errors:
            print(f"{len(check.errors)} errors; report: {report}")
        else:
            print(f"valid; preview: {json.dumps(check.preview)}; warnings: {json.dumps(check.warnings())}")
    return EXIT_OK if not check.errors else EXIT_INVALID


def cmd_import(args) -> int:
    if api_client.configured():
        return _import_through_api(args)
    if args.require_approval:
        raise UsageError("--require-approval waits for someone to approve in Airflow: import through the"
                         " upload API (set AIRFLOW_API_URL; see `make airflow`)")
    ctx = _context(args)
    if args.max_errors:
        os.environ["CONTACT_IMPORT_MAX_ERRORS"] = str(args.max_errors)  # read by the DAG run's tasks
    import_id = intake.create_import(ctx, workspace=args.workspace, channel=args.channel,
                                       tag_mode=args.tag_mode, file=args.file, mapping=_mapping(args),
                                       require_approval=args.require_approval,
                                       complete_local_phones=args.complete_local_phones, source="cli",
                                       runner=heartbeat.this_process())
    conf = {"workspace": args.workspace, "channel": args.channel, "tag_mode": args.tag_mode,
            "file": args.file, "import_id": import_id, "require_approval": args.require_approval,
            "complete_local_phones": args.complete_local_phones}
    log = local_airflow.run_import(conf, ctx.cdp_url)
    with db.transaction(ctx.cdp_url) as conn:  # a run that died without telling its import
        statuses.end(conn, import_id, statuses.FAILED, f"the DAG run ended early; log: {log}")
        record = imports.get(conn, import_id)
    summary = imports.summary(record)
    summary["log"] = str(log)
    if args.json:
        _emit(args, summary, "")
    else:
        print(_describe(summary))
    return IMPORT_EXIT.get(record["status"], EXIT_FAILED)


def cmd_resume(args) -> int:
    """An interrupted local import goes on in this process from the stage it stopped in
    (the upsert after its last committed chunk), or with --give-up ends failed."""
    ctx = _context(args)
    try:
        if args.give_up:
            with db.transaction(ctx.cdp_url) as conn:
                heartbeat.give_up(conn, args.import_id)
                record = imports.get(conn, args.import_id)
        else:
            from . import tasks  # the stages: pandas and Great Expectations when they validate

            record = tasks.resume(ctx, args.import_id)
    except heartbeat.NotInterrupted as exc:
        if args.json:
            _emit(args, {"import_id": args.import_id, "error": str(exc)}, "")
        else:
            print(f"contact-import: {exc}", file=sys.stderr)
        return EXIT_INVALID
    summary = imports.summary(record)
    _emit(args, summary, _describe(summary))
    return IMPORT_EXIT.get(record["status"], EXIT_FAILED)


def _import_through_api(args) -> int:
    try:
        record = api_client.import_file(args.file, workspace=args.workspace, channel=args.channel,
                                        tag_mode=args.tag_mode, mapping=_mapping(args),
                                        require_approval=args.require_approval,
                                        complete_local_phones=args.complete_local_phones)
    except api_client.ApiError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        _emit(args, record, "")
    else:
        print(_describe(record))
    return IMPORT_EXIT.get(record["status"], EXIT_FAILED)


def _describe(summary: dict) -> str:
    lines = [f"import {summary['import_id']}: {_status(summary)}"
             f" ({summary.get('workspace')}/{summary.get('channel')}, {summary.get('rows')} rows,"
             f" encoding {summary.get('encoding')})"]
    if summary.get("interrupted"):
        lines.append(f"  {_interrupted_advice(summary)}")
    running = _progress_line(summary.get("progress"))
    if running:
        lines.append(f"  {running}")
    counts = summary.get("result") or summary.get("preview")
    if counts:
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if summary.get("warnings"):
        lines.append(f"  warnings: {json.dumps(summary['warnings'])}")
    if summary.get("error_report"):
        lines.append(f"  {summary.get('errors')} errors; report: {summary['error_report']}")
    message = summary.get("message")
    if isinstance(message, dict):  # the upload API's answer (AIRFLOW_API_URL): an object with its sentence
        message = message.get("text")
    if message and summary["status"] != statuses.COMPLETED:
        lines.append(f"  {message}")
    return "\n".join(lines)


def _interrupted_advice(summary: dict) -> str:
    if (summary.get("runner") or "").startswith(f"{heartbeat.DAG_RUN}:"):
        return "its DAG run ended without ending it: import the file again to finish"
    return (f"its process stopped without ending it: `contact-import resume {summary['import_id']}` goes on from"
            " where it stopped, `--give-up` ends it failed")


def _status(summary: dict) -> str:
    return f"{summary['status']} (interrupted)" if summary.get("interrupted") else summary["status"]


def _progress_line(progress: dict | None) -> str | None:
    """A running import's step in one line: `checking 50,000/152,645 rows, 2,104 rows/s, about 48 s left`."""
    if not progress:
        return None
    total = f"{progress['rows_total']:,}" if progress.get("rows_total") is not None else "?"
    parts = [f"{progress['step']} {progress['rows_done']:,}/{total} rows"]
    if progress.get("rows_per_second") is not None:
        parts.append(f"{progress['rows_per_second']:,.0f} rows/s")
    if progress.get("seconds_left") is not None:
        parts.append(f"about {_duration(progress['seconds_left'])} left")
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def cmd_status(args) -> int:
    with db.transaction(_context(args).cdp_url) as conn:
        if args.import_id:
            ws_id = workspaces.get(conn, args.workspace).id if args.workspace else None
            summary = imports.summary(imports.get(conn, args.import_id, ws_id))
            _emit(args, summary, _describe(summary))
            return EXIT_OK
        ws_id = workspaces.get(conn, args.workspace).id if args.workspace else None
        items = [imports.summary(r) for r in imports.list_imports(conn, ws_id)]
    if args.json:
        _emit(args, {"imports": items}, "")
    else:
        for item in items:
            rows = _progress_line(item.get("progress")) or f"{item['processed_rows']}/{item['total_rows']}"
            print(f"{item['import_id']}  {item['created_at'][:19]}  {item['workspace']:<12} {item['channel']:<9}"
                  f" {_status(item):<24} {rows}")
    return EXIT_OK


def cmd_cancel(args) -> int:
    if api_client.configured():  # through Airflow: the DAG run is failed too
        try:
            record = api_client.cancel(args.import_id)
        except api_client.ApiError as exc:
            _emit(args, {"import_id": args.import_id, "error": str(exc)}, str(exc))
            return EXIT_INVALID if exc.status == 409 else EXIT_USAGE
        _emit(args, {"import_id": args.import_id, "status": record["status"]}, f"import {args.import_id} cancelled")
        return EXIT_OK
    with db.transaction(_context(args).cdp_url) as conn:
        try:
            statuses.change(conn, args.import_id, statuses.CANCELLED, message="cancelled from the command line")
        except statuses.AlreadyFinished as exc:
            _emit(args, {"import_id": args.import_id, "status": exc.current}, str(exc))
            return EXIT_INVALID
    _emit(args, {"import_id": args.import_id, "status": statuses.CANCELLED}, f"import {args.import_id} cancelled")
    return EXIT_OK


def cmd_export(args) -> int:
    with db.transaction(_context(args).cdp_url) as conn:
        ws = workspaces.get(conn, args.workspace)
        export.write(export.contacts(conn, ws.id, args.channel), sys.stdout, args.format)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
