"""Import routes: which recurring data job a blob in the inbound container goes to.

A route is one entry of the ``D365_ROUTES`` app setting (a JSON list)::

    {"name": "customers", "prefix": "customers/{company}/",
     "activity_id": "6d31e09f-0249-459f-94f0-aad9c2c47b64", "entity": "CustomersV3"}

Keys:

``name``         required; unique (case-insensitive), 1-64 letters, digits, ``-`` or ``_``.
``prefix``       required; the blob path inside the inbound container, relative, ending in
                 ``/``, without ``..`` or empty segments. It may hold one ``{company}``
                 segment (a whole segment): that segment of the blob path is the legal
                 entity sent as ``company``. Prefixes match case-sensitively, as blob names do.
``activity_id``  required; the recurring data job's ID (Data management > Manage scheduled
                 data jobs). Braces and upper case are accepted; kept lower case, bare.
``entity``       the data entity name as the job's data project shows it, sent as
                 ``entity``. Omitted: the route feeds a *data package* job, which takes only
                 ``.zip`` packages and no ``entity`` parameter.
``company``      a fixed legal entity (1-4 letters or digits); not together with ``{company}``.
                 Neither: F&O uses the job's company (the job needs "Use company from
                 message" for ``company`` to count).
``max_bytes``    largest file sent, in bytes (an integer, or a text such as ``"20MiB"``), at
                 most 1 GiB; default: the ``MAX_FILE_BYTES`` setting (enqueue routes), the
                 package path's own limit (package routes, ``on_too_large`` files: see
                 :data:`shared.flows.policies.PACKAGE_MAX_BYTES`).
``extensions``   allowed file suffixes, e.g. ``[".xml"]``, compared case-insensitively;
                 omitted: any (data package routes, and package routes without
                 ``template``: ``[".zip"]``, the only files they take).
``enabled``      ``false`` parks the route: its files are rejected, not sent. Default true.
``api``          ``"enqueue"`` (default): the recurring data job of ``activity_id``;
                 ``"package"``: the DMF package API into the data project
                 ``definition_group`` (no ``activity_id``): GetAzureWriteUrl, a PUT of the
                 package, ImportFromPackage with ``legalEntityId`` the route's company.
``definition_group`` the data project's name (Data management > the project); required with
                 ``"api": "package"`` or ``on_too_large``.
``overwrite``    ImportFromPackage's ``overwrite`` (false for composite entities); default true.
``execute``      ImportFromPackage's ``execute`` (run staging to target); default true.
``template``     ``"<container>/<path>.zip"``: a package holding ``Manifest.xml`` and
                 ``PackageHeader.xml``; a file that is not a ``.zip`` is wrapped into a copy
                 of it, under the name the manifest's ``InputFilePath`` gives. Without it a
                 package route takes only ``.zip`` packages.
``on_too_large`` ``"package"`` on an enqueue route: a file over ``max_bytes``, or one F&O
                 refused with 413, is imported through the package API (``definition_group``,
                 and ``template`` unless the route feeds ``.zip`` packages).
``order``        ``"upload"``: the route's files of one company go to F&O one at a time, in
                 the order of their blobs' creation time (then name): the next is sent once
                 the one before was enqueued; ``"final"``: once the one before reached a
                 final state. Omitted: files go in parallel. See :mod:`shared.flows.line`.
``on_failure``   with ``order``: ``"stop"`` (default) holds the line behind a failed file
                 until an operator resubmits it or releases the line; ``"continue"`` goes on.

:class:`ImportRoutes` resolves a blob path to a :class:`RouteMatch` by the longest matching
prefix (a literal segment beats ``{company}``) or raises :class:`RoutingError` with a
:class:`RejectReason`. A bad route raises :class:`RouteConfigError` listing every problem;
two routes that would both claim the same paths with equal specificity are such a problem.

Blob names are accepted within the limits :mod:`shared.config.blob_names` sets, so that the
archive's name for the file stays within Azure's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from shared.config.blob_names import checked_segments
from shared.config.import_fields import COMPANY_PLACEHOLDER, ROUTES_SETTING
from shared.config.import_route import ImportRoute
from shared.config.parsers import EXAMPLE_GUID, shown
from shared.config.rejections import RejectReason, RoutingError
from shared.config.route_fields import RouteConfigError, company_problem
from shared.config.route_json import build_each, load_route_json

__all__ = ["ROUTES_EXAMPLE", "ImportRoutes", "RouteMatch"]

ROUTES_EXAMPLE = (
    '[{"name": "customers", "prefix": "customers/{company}/", '
    f'"activity_id": "{EXAMPLE_GUID}", "entity": "CustomersV3"}}]'
)
"""A one-route ``D365_ROUTES`` value, for error texts."""


@dataclass(frozen=True)
class RouteMatch:
    """A blob path resolved to its route and the company it is sent for."""

    route: ImportRoute
    company: str | None


class ImportRoutes:
    """The configured routes, validated as a whole; resolves blob paths.

    :param routes: the routes; names and prefixes must be unique, and no two may claim the
        same paths with equal specificity.
    :raises RouteConfigError: duplicate names or prefixes, or ambiguous prefixes.
    """

    def __init__(self, routes: Iterable[ImportRoute]) -> None:
        self._routes = tuple(routes)
        problems = _duplicate_problems(self._routes) + _ambiguity_problems(self._routes)
        if problems:
            raise RouteConfigError(problems)
        # Most specific first, so the first match is the longest prefix.
        self._by_specificity = sorted(self._routes, key=ImportRoute.specificity, reverse=True)

    @classmethod
    def from_json(cls, text: str, *, setting: str = ROUTES_SETTING) -> ImportRoutes:
        """Parse the ``D365_ROUTES`` JSON list.

        :raises RouteConfigError: every problem found, each naming ``setting[index].key``.
        """
        raw = load_route_json(text, setting)
        if isinstance(raw, str) and raw.lstrip().startswith("["):
            raise RouteConfigError(
                [
                    f"{setting}: is a JSON string holding the list (encoded twice); store the "
                    "list itself, starting with ["
                ]
            )
        if not isinstance(raw, list) or not raw:
            raise RouteConfigError(
                [f"{setting}: expected a non-empty JSON list of routes, e.g. {ROUTES_EXAMPLE}"]
            )
        routes, problems = build_each(raw, setting, ImportRoute.from_dict)
        if problems:
            raise RouteConfigError(problems)
        return cls(routes)

    def __iter__(self) -> Iterator[ImportRoute]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def __repr__(self) -> str:
        return f"ImportRoutes({[r.name for r in self._routes]!r})"

    def get(self, name: str) -> ImportRoute | None:
        """The route called ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((r for r in self._routes if r.name.lower() == wanted), None)

    def resolve(self, blob_path: str) -> RouteMatch:
        """Resolve a blob path (inside the inbound container) to its route and company.

        :raises RoutingError: with ``reason`` BAD_NAME, NO_ROUTE, ROUTE_DISABLED,
            BAD_COMPANY or EXTENSION_NOT_ALLOWED, in that order of checking.
        """
        segments = checked_segments(blob_path)
        route = self._longest_match(blob_path, segments)
        company = route.company_for(segments)
        if not route.enabled:
            raise RoutingError(
                RejectReason.ROUTE_DISABLED,
                blob_path,
                f"route {route.name!r} for {shown(blob_path)} is disabled; set "
                f'"enabled": true on it in {ROUTES_SETTING} and upload the file again',
            )
        if route.takes_company_from_path:
            _check_path_company(route, blob_path, company or "")
        _check_extension(route, blob_path, segments[-1])
        return RouteMatch(route=route, company=company)

    def _longest_match(self, blob_path: str, segments: Sequence[str]) -> ImportRoute:
        route = next((r for r in self._by_specificity if r.matches(segments)), None)
        if route is None:
            prefixes = ", ".join(r.prefix for r in self._routes)
            raise RoutingError(
                RejectReason.NO_ROUTE,
                blob_path,
                f"no route matches {shown(blob_path)}; routes: {prefixes}; add a route to "
                f"{ROUTES_SETTING} or upload under one of these prefixes",
            )
        return route


def _duplicate_problems(routes: Sequence[ImportRoute]) -> list[str]:
    problems = []
    names: dict[str, ImportRoute] = {}
    prefixes: dict[str, ImportRoute] = {}
    for route in routes:
        if route.name.lower() in names:
            problems.append(f"{ROUTES_SETTING}: route name {route.name!r} is used twice")
        names.setdefault(route.name.lower(), route)
        other = prefixes.setdefault(route.prefix, route)
        if other is not route:
            problems.append(
                f"{ROUTES_SETTING}: routes {other.name!r} and {route.name!r} have the same "
                f"prefix {route.prefix!r}; each folder feeds one job"
            )
    return problems


def _ambiguity_problems(routes: Sequence[ImportRoute]) -> list[str]:
    """Pairs of routes that would both claim some path with the same specificity.

    Resolution takes the most specific prefix; between equals the configuration order would
    decide silently, e.g. ``{company}/in/`` and ``USMF/{company}/`` for ``USMF/in/a.xml``.
    """
    peers: dict[tuple[int, int], list[ImportRoute]] = {}
    for route in routes:
        peers.setdefault(route.specificity(), []).append(route)
    return [
        _ambiguity_problem(first, second)
        for group in peers.values()
        for index, first in enumerate(group)
        for second in group[index + 1 :]
        if first.prefix != second.prefix and _overlap(first, second)
    ]


def _overlap(first: ImportRoute, second: ImportRoute) -> bool:
    """True when some path matches both prefixes (of equal length)."""
    return all(
        COMPANY_PLACEHOLDER in (mine, theirs) or mine == theirs
        for mine, theirs in zip(first.folders, second.folders, strict=True)
    )


def _ambiguity_problem(first: ImportRoute, second: ImportRoute) -> str:
    example = "/".join(
        theirs if mine == COMPANY_PLACEHOLDER else mine
        for mine, theirs in zip(first.folders, second.folders, strict=True)
    )
    return (
        f"{ROUTES_SETTING}: routes {first.name!r} ({first.prefix!r}) and "
        f"{second.name!r} ({second.prefix!r}) both match paths such as "
        f"{example + '/<file>'!r} and neither is more specific; make one prefix "
        "longer or more literal"
    )


def _check_path_company(route: ImportRoute, blob_path: str, company: str) -> None:
    problem = company_problem(company)
    if problem:
        raise RoutingError(
            RejectReason.BAD_COMPANY,
            blob_path,
            f"the {{company}} folder of {shown(blob_path)} (route {route.name!r}, prefix "
            f"{route.prefix!r}): {problem}; upload under the legal entity's folder",
        )


def _check_extension(route: ImportRoute, blob_path: str, file_name: str) -> None:
    if not route.extensions or file_name.lower().endswith(route.extensions):
        return
    if route.uses_package_api and route.template is None:
        raise RoutingError(
            RejectReason.EXTENSION_NOT_ALLOWED,
            blob_path,
            f"{shown(blob_path)} does not end with .zip, which package route {route.name!r} "
            "requires: without a template it imports data packages only; upload the data "
            f"package (.zip), or give the route a template in {ROUTES_SETTING} to wrap other "
            "files into one",
        )
    kind = "data package route" if route.is_package else "route"
    raise RoutingError(
        RejectReason.EXTENSION_NOT_ALLOWED,
        blob_path,
        f"{shown(blob_path)} does not end with {' or '.join(route.extensions)}, which "
        f"{kind} {route.name!r} requires; upload a file of that type or change the route's "
        f"extensions in {ROUTES_SETTING}",
    )
