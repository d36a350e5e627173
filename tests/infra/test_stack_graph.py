"""Keys, then table, then functions; regions in parallel; constant depth."""

from __future__ import annotations

import functools

from tests.infra.synth import Synthesized


def _deps(app: Synthesized) -> dict[str, set[str]]:
    names = {s.stack_name for s in app.stacks.all()}
    return {art.stack_name: {d.id for d in art.dependencies if d.id in names} for art in app.assembly.stacks}


def depth(app: Synthesized) -> int:
    deps = _deps(app)

    @functools.cache
    def level(name: str) -> int:
        return 1 + max((level(d) for d in deps[name]), default=0)

    return max(level(n) for n in deps)


def test_every_stack_is_synthesized(synthesized: Synthesized) -> None:
    app = synthesized
    names = {a.stack_name for a in app.assembly.stacks}
    expected = {f"{app.config.stack_prefix}-Keys-{r}" for r in app.config.regions}
    expected |= {f"{app.config.stack_prefix}-Functions-{r}" for r in app.config.regions}
    expected |= {f"{app.config.stack_prefix}-Table", f"{app.config.stack_prefix}-Audit"}
    assert names == expected


def test_keys_then_table_then_functions(synthesized: Synthesized) -> None:
    app = synthesized
    deps = _deps(app)
    primary_keys = app.stacks.keys[app.config.primary_region].stack_name
    assert deps[primary_keys] == set()
    for region in app.config.replica_regions:
        assert deps[app.stacks.keys[region].stack_name] == {primary_keys}
    assert deps[app.stacks.table.stack_name] == {s.stack_name for s in app.stacks.keys.values()}
    for region, stack in app.stacks.functions.items():
        assert deps[stack.stack_name] == {app.stacks.table.stack_name, app.stacks.keys[region].stack_name}
    # The trail records every region and needs nothing: the first wave, the depth unchanged.
    assert app.stacks.audit is not None and deps[app.stacks.audit.stack_name] == set()


def test_graph_depth_does_not_grow_with_regions(default_app: Synthesized, four_region_app: Synthesized) -> None:
    assert depth(default_app) == 4
    assert depth(four_region_app) == 4


def test_aurora_graph_keys_network_peering_database_functions(aurora: Synthesized) -> None:
    app = aurora
    deps = _deps(app)
    primary = app.config.primary_region
    keys = {r: s.stack_name for r, s in app.stacks.keys.items()}
    databases = {r: s.stack_name for r, s in app.stacks.databases.items()}
    networks = {r: s.stack_name for r, s in app.stacks.networks.items()}
    peerings = {r: s.stack_name for r, s in app.stacks.peerings.items()}
    routes = {r: s.stack_name for r, s in app.stacks.peer_routes.items()}
    regions = sorted(app.config.regions)
    # A pair's connection is requested by the region whose name sorts first: all but the last request some.
    assert sorted(peerings) == regions[:-1] and sorted(routes) == regions
    for region in app.config.regions:
        assert deps[networks[region]] == set(), "a network needs nothing"
        if region in peerings:
            assert deps[peerings[region]] == {networks[r] for r in regions if r >= region}
        # This region's route tables, and the connections of every pair it belongs to.
        assert deps[routes[region]] == {networks[region]} | {peerings[min(region, r)] for r in regions if r != region}
        assert deps[app.stacks.functions[region].stack_name] == {
            keys[region],
            networks[region],
            databases[region],
            databases[primary],
            *routes.values(),  # a writer reaches the primary wherever it is
        }
        if region != primary:
            assert deps[databases[region]] == {keys[region], networks[region], databases[primary]}
    # The primary database holds the secrets, replicated with every region's secrets key.
    assert deps[databases[primary]] == set(keys.values()) | {networks[primary]}
    # The depth stays 5 (keys, replica keys, primary database, secondaries, functions; networks,
    # connections, routes run beside them) whatever the regions.
    assert depth(app) == 5
