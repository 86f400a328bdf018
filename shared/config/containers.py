"""Where the app's files go, checked against each other: no route may write into a container
that would feed the files back in."""

from __future__ import annotations

from collections.abc import Mapping, Set

from shared.config.exports import EXPORT_ROUTES_SETTING, ExportRoutes
from shared.config.package_exports import PACKAGE_EXPORT_ROUTES_SETTING, PackageExportRoutes
from shared.config.reader import SettingsReader
from shared.config.routes import ImportRoutes

__all__ = [
    "check_export_targets",
    "check_import_containers",
    "check_package_export_targets",
    "check_route_prefixes",
]


def check_import_containers(
    reader: SettingsReader, inbound: str, others: Mapping[str, str]
) -> None:
    """The app's own containers (setting name -> container) that must not be the inbound one."""
    for name, container in others.items():
        if container == inbound:
            reader.problem(
                name,
                f"{container!r} is the inbound container; writing there would enqueue the "
                "files again: use a container of its own",
            )


def check_route_prefixes(reader: SettingsReader, container: str, routes: ImportRoutes) -> None:
    """A route's prefix is a folder inside the inbound container, never that container's name."""
    for route in routes:
        first, _, rest = route.prefix.partition("/")
        if first == container:
            reader.problem(
                "D365_ROUTES",
                f"route {route.name!r}: prefix {route.prefix!r} starts with the inbound "
                f"container's name; a prefix is a folder inside {container}: use {rest!r}",
            )


def check_export_targets(
    reader: SettingsReader, ours: Set[str], routes: ImportRoutes, exports: ExportRoutes
) -> None:
    """An export route has a job of its own and writes outside ``ours`` (the import containers)."""
    imports = {route.activity_id: route.name for route in routes}
    for route in exports:
        if route.activity_id in imports:
            reader.problem(
                EXPORT_ROUTES_SETTING,
                f"export route {route.name!r}: activity_id {route.activity_id} is the job of "
                f"import route {imports[route.activity_id]!r} in D365_ROUTES; a recurring data "
                "job either imports or exports: use the export job's own ID",
            )
        if route.container in ours:
            reader.problem(
                EXPORT_ROUTES_SETTING,
                f"export route {route.name!r}: container {route.container!r} is one of the "
                "app's import containers (inbound, archive, errors); exported files there "
                "would be enqueued or archived: use a container of its own, e.g. d365-exports",
            )


def check_package_export_targets(
    reader: SettingsReader,
    ours: Set[str],
    exports: ExportRoutes,
    package_exports: PackageExportRoutes,
) -> None:
    """A package export route has a name of its own and writes outside ``ours``."""
    names = {route.name.lower() for route in exports}
    for route in package_exports:
        if route.name.lower() in names:
            reader.problem(
                PACKAGE_EXPORT_ROUTES_SETTING,
                f"package export route {route.name!r}: the name is an export route's in "
                "EXPORT_ROUTES too; the records list both by route name: rename one",
            )
        if route.container in ours:
            reader.problem(
                PACKAGE_EXPORT_ROUTES_SETTING,
                f"package export route {route.name!r}: container {route.container!r} is one of "
                "the app's import containers (inbound, archive, errors); packages there would "
                "be enqueued or archived: use a container of its own, e.g. d365-exports",
            )
