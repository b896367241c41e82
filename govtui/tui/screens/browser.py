"""Browse the catalog: clients → projects → dataset scopes, with a scope's details beside."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Header, Static, Tree
from textual.widgets.tree import TreeNode

from govtui.errors import InputError
from govtui.services import catalog_views, evidence_pack
from govtui.services.catalog import ScopeView
from govtui.services.evidence_pack import Progress, Written
from govtui.tui.footer import GovtuiFooter
from govtui.tui.modals.evidence_export import EvidenceExport, default_pack_path
from govtui.tui.pause_flow import ClientStatusChanged
from govtui.tui.plain import line, plain
from govtui.tui.screens.base import DrillIn, GovtuiScreen

PAUSED_STYLE = "bold red"


@dataclass(frozen=True)
class ClientNode:
    name: str
    status: str
    projects: int


@dataclass(frozen=True)
class ProjectNode:
    client: str
    name: str
    scopes: int


NodeData = ClientNode | ProjectNode | ScopeView


def describe(data: NodeData | None) -> Text:
    """What the side panel says about a tree node."""
    if isinstance(data, ScopeView):
        paused = data.client_status == "paused"
        return Text.assemble(
            ("Scope\n\n", "bold"),
            ("Path          ", "dim"),
            f"{line(data.path)}\n",
            ("Sensitivity   ", "dim"),
            f"{line(data.sensitivity)}\n",
            ("Max days      ", "dim"),
            f"{data.max_grant_days}\n",
            ("Client status ", "dim"),
            (line(data.client_status), PAUSED_STYLE if paused else ""),
        )
    if isinstance(data, ProjectNode):
        return Text.assemble(
            ("Project\n\n", "bold"),
            ("Path   ", "dim"),
            f"{line(data.client)}/{line(data.name)}\n",
            ("Scopes ", "dim"),
            f"{data.scopes}",
        )
    if isinstance(data, ClientNode):
        paused = data.status == "paused"
        return Text.assemble(
            ("Client\n\n", "bold"),
            ("Name     ", "dim"),
            f"{line(data.name)}\n",
            ("Status   ", "dim"),
            (line(data.status), PAUSED_STYLE if paused else ""),
            "\n",
            ("Projects ", "dim"),
            f"{data.projects}",
        )
    return Text("Select a scope to see its details.", style="dim")


def client_label(name: str, status: str) -> Text:
    """A client's line in the tree: bold, or bold red with "(paused)"."""
    paused = status == "paused"
    # Labels as Text: a str label is parsed as markup.
    label = plain(name, PAUSED_STYLE if paused else "bold")
    if paused:
        label.append(" (paused)", style=PAUSED_STYLE)
    return label


def node_key(data: NodeData | None) -> tuple[str, ...] | None:
    """What identifies a node across reloads (its details may have changed)."""
    if isinstance(data, ScopeView):
        return ("scope", str(data.id))
    if isinstance(data, ProjectNode):
        return ("project", data.client, data.name)
    if isinstance(data, ClientNode):
        return ("client", data.name)
    return None


def client_of(data: NodeData | None) -> str | None:
    """The client a tree node belongs to."""
    if isinstance(data, ClientNode):
        return data.name
    if isinstance(data, ProjectNode | ScopeView):
        return data.client
    return None


class BrowserScreen(GovtuiScreen):
    """The catalog as a tree; pause or resume the client of the selected node."""

    HELP = (
        "Clients, their projects and dataset scopes as a tree; a scope's details beside it. "
        "p pauses the selected client (after its blast radius and a reason), u resumes it "
        "(an approver's TOTP code); E exports the client's signed evidence pack over a period. "
        "Enter on a client shows its grants; space opens or closes a node."
    )
    ENTER_HELP = "Show the client's grants"
    SUB_TITLE = "Clients / projects / scopes"
    SHOWS_GRANTS = True  # a client's paused status changes with its grants
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "Pause client"),
        Binding("u", "resume", "Resume client"),
        Binding("E", "export_evidence", "Evidence pack"),
    ]

    @dataclass
    class PauseRequested(Message):
        client: str

    @dataclass
    class ResumeRequested(Message):
        client: str

    @dataclass
    class Loaded(Message):
        clients: list[tuple[str, str]]  # name, status
        projects: list[tuple[str, str]]  # client name, project name
        scopes: list[ScopeView]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="browser"):
            tree: Tree[NodeData] = Tree("Clients", id="catalog")
            tree.show_root = False
            tree.auto_expand = False  # Enter drills in; space opens and closes
            yield tree
            yield Static(describe(None), id="scope-details")
        yield GovtuiFooter()

    def reload(self) -> None:
        self.load_catalog()

    @work(thread=True, exclusive=True, exit_on_error=False, group="browser")
    def load_catalog(self) -> None:
        tree = self.workspace.read(catalog_views.tree)
        self.post_message(self.Loaded(tree.clients, tree.projects, tree.scopes))

    @on(Loaded)
    def show_catalog(self, message: Loaded) -> None:
        tree: Tree[NodeData] = self.query_one("#catalog", Tree)
        was_at = node_key(tree.cursor_node.data) if tree.cursor_node is not None else None
        tree.clear()
        scopes_of: dict[tuple[str, str], list[ScopeView]] = {}
        for scope in message.scopes:
            scopes_of.setdefault((scope.client, scope.project), []).append(scope)
        projects_of: dict[str, list[str]] = {}
        for client, project in message.projects:
            projects_of.setdefault(client, []).append(project)
        nodes: list[TreeNode[NodeData]] = []
        for name, status in message.clients:
            projects = projects_of.get(name, [])
            client_node = tree.root.add(
                client_label(name, status),
                data=ClientNode(name, status, len(projects)),
                expand=True,
            )
            nodes.append(client_node)
            for project in projects:
                scopes = scopes_of.get((name, project), [])
                project_node = client_node.add(
                    plain(project), data=ProjectNode(name, project, len(scopes)), expand=True
                )
                nodes.append(project_node)
                for scope in scopes:
                    label = Text.assemble(line(scope.name), (f"  {line(scope.sensitivity)}", "dim"))
                    nodes.append(project_node.add_leaf(label, data=scope))
        restore = next((n for n in nodes if was_at and node_key(n.data) == was_at), None)
        if restore is not None:
            # A node's line is known once the tree has laid out its lines again.
            self.call_after_refresh(tree.move_cursor, restore)
        self._show_details(None)

    @on(ClientStatusChanged)
    def client_status_changed(self, message: ClientStatusChanged) -> None:
        """A pause or resume committed: the client's line turns red (or back) now."""
        tree: Tree[NodeData] = self.query_one("#catalog", Tree)
        for node in tree.root.children:
            data = node.data
            if isinstance(data, ClientNode) and data.name == message.client:
                node.data = ClientNode(data.name, message.status, data.projects)
                node.set_label(client_label(data.name, message.status))
                if tree.cursor_node is node:
                    self._show_details(node.data)

    def _selected_client(self) -> str | None:
        tree: Tree[NodeData] = self.query_one("#catalog", Tree)
        node = tree.cursor_node
        client = client_of(node.data) if node is not None else None
        if client is None:
            self.notify("Select a client (or one of its projects or scopes) first.")
        return client

    def action_pause(self) -> None:
        """Pause the selected client, after its blast radius and a reason."""
        client = self._selected_client()
        if client is not None:
            self.post_message(self.PauseRequested(client))

    def action_resume(self) -> None:
        """Resume the selected client with your TOTP code."""
        client = self._selected_client()
        if client is not None:
            self.post_message(self.ResumeRequested(client))

    def action_export_evidence(self) -> None:
        """Export the selected client's evidence pack over a period chosen in the dialog."""
        client = self._selected_client()
        if client is None:
            return
        self.app.push_screen(
            EvidenceExport(
                title=f"Evidence pack of client {client} over a period",
                default_path=default_pack_path(client),
                export=partial(self._export, client),
                period=True,
            )
        )

    def _export(
        self, client: str, path: Path, first: str | None, last: str | None, progress: Progress
    ) -> Written:
        if first is None or last is None:
            raise InputError("give the period: the first and the last day (YYYY-MM-DD)")
        return evidence_pack.write(
            self.workspace, path, client=client, first=first, last=last, progress=progress
        )

    @on(Tree.NodeHighlighted, "#catalog")
    def node_highlighted(self, event: Tree.NodeHighlighted[NodeData]) -> None:
        self._show_details(event.node.data)

    @on(Tree.NodeSelected, "#catalog")
    def node_chosen(self, event: Tree.NodeSelected[NodeData]) -> None:
        """Enter on a client: its grants (on a project or scope: its details)."""
        self._show_details(event.node.data)
        if isinstance(event.node.data, ClientNode):
            self.post_message(DrillIn(client=event.node.data.name))

    def _show_details(self, data: NodeData | None) -> None:
        self.query_one("#scope-details", Static).update(describe(data))
