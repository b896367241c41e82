"""`govtui client|project|scope add|list` (client pause and resume live in pause_commands)."""

from __future__ import annotations

import argparse

from govtui.cli import arguments, directory_commands, listing, pause_commands
from govtui.cli.context import Context, print_table
from govtui.models import SENSITIVITIES
from govtui.services import catalog


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    client = sub.add_parser("client", help="clients (labs the vendor works for)")
    csub = client.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = csub.add_parser("add", help="add a client")
    p.add_argument("name")
    p.set_defaults(handler=run_client_add)
    p = csub.add_parser("list", help="list clients")
    listing.add_output_arguments(p, limit=False)
    p.set_defaults(handler=run_client_list)
    pause_commands.register_client(csub)

    project = sub.add_parser("project", help="a client's projects")
    psub = project.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = psub.add_parser("add", help="add a project")
    p.add_argument("path", metavar="CLIENT/PROJECT")
    p.set_defaults(handler=run_project_add)
    p = psub.add_parser("list", help="list projects")
    p.add_argument("--client")
    listing.add_output_arguments(p, limit=False)
    p.set_defaults(handler=run_project_list)

    scope = sub.add_parser("scope", help="dataset scopes inside projects")
    ssub = scope.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = ssub.add_parser("add", help="add a dataset scope")
    p.add_argument("path", metavar="CLIENT/PROJECT/SCOPE")
    p.add_argument("--sensitivity", required=True, choices=SENSITIVITIES)
    p.add_argument(
        "--max-days", type=arguments.DAYS, help="longest grant (default: the tier's cap)"
    )
    p.set_defaults(handler=run_scope_add)
    p = ssub.add_parser("list", help="list dataset scopes")
    p.add_argument("--client")
    p.add_argument("--project", metavar="CLIENT/PROJECT")
    listing.add_output_arguments(p, limit=False)
    p.set_defaults(handler=run_scope_list)
    directory_commands.register_scope_map(ssub)


def run_client_add(ctx: Context, args: argparse.Namespace) -> int:
    client = ctx.workspace().act(catalog.add_client, name=args.name)
    print(f"client {client.name} added")
    return 0


def run_client_list(ctx: Context, args: argparse.Namespace) -> int:
    clients = ctx.workspace().read(catalog.list_clients)
    rows = [{"name": c.name, "status": c.status, "created_at": c.created_at} for c in clients]
    if not listing.json_rows(args, rows):
        print_table(["NAME", "STATUS"], [[r["name"], r["status"]] for r in rows])
    return 0


def run_project_add(ctx: Context, args: argparse.Namespace) -> int:
    ctx.workspace().act(catalog.add_project, path=args.path)
    print(f"project {args.path} added")
    return 0


def run_project_list(ctx: Context, args: argparse.Namespace) -> int:
    projects = ctx.workspace().read(catalog.list_projects, args.client)
    rows = [{"client": c, "name": p.name, "path": f"{c}/{p.name}"} for c, p in projects]
    if not listing.json_rows(args, rows):
        print_table(["PROJECT"], [[r["path"]] for r in rows])
    return 0


def run_scope_add(ctx: Context, args: argparse.Namespace) -> int:
    scope = ctx.workspace().act(
        catalog.add_scope, path=args.path, sensitivity=args.sensitivity, max_days=args.max_days
    )
    print(
        f"scope {args.path} added ({scope.sensitivity}, grants up to {scope.max_grant_days} days)"
    )
    return 0


def run_scope_list(ctx: Context, args: argparse.Namespace) -> int:
    scopes = ctx.workspace().read(catalog.list_scopes, client=args.client, project=args.project)
    if not listing.json_rows(args, scopes):
        print_table(
            ["SCOPE", "SENSITIVITY", "MAX DAYS"],
            [[s.path, s.sensitivity, s.max_grant_days] for s in scopes],
        )
    return 0
