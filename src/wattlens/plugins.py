"""Extension points (pluggy hooks), with the built-ins written on the same hooks.

A third-party package adds a wire protocol, a grid feed, a rating scale, an Energy Score task
or a report renderer
by exposing a module with `@hookimpl` functions under the `wattlens` entry-point group:

    [project.entry-points.wattlens]
    myplugin = "myplugin"

    # myplugin.py
    from wattlens.plugins import hookimpl

    @hookimpl
    def wattlens_grid_feeds():
        return [MyFeed()]          # an object with .name and .reading(zone, region, at)

Names must be unique: a plugin cannot silently replace a built-in.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from wattlens.errors import ConfigError

if TYPE_CHECKING:
    from wattlens.grid import GridFeed
    from wattlens.protocols.base import WireProtocol

GROUP = "wattlens"
hookspec = pluggy.HookspecMarker(GROUP)
hookimpl = pluggy.HookimplMarker(GROUP)


class Specs:
    """The hooks. Each returns a list of objects that carry a unique `name`."""

    @hookspec
    def wattlens_protocols(self) -> list[WireProtocol]:  # type: ignore[empty-body]
        """Wire protocols (wattlens.protocols.base.WireProtocol subclasses); `name` is the upstream kind."""

    @hookspec
    def wattlens_grid_feeds(self) -> list[GridFeed]:  # type: ignore[empty-body]
        """Grid feeds (wattlens.grid.GridFeed): `[grid] feed = NAME` in the configuration picks one."""

    @hookspec
    def wattlens_rating_scales(self) -> list[Any]:  # type: ignore[empty-body]
        """Energy Score rating scales: `.name` and `.stars(wh_per_1000, low, high) -> 1..5`."""

    @hookspec
    def wattlens_score_tasks(self) -> list[Any]:  # type: ignore[empty-body]
        """Energy Score tasks: `.name`, `.reference()`, `.samples(n)`, `.runner(model, random_weights)`."""

    @hookspec
    def wattlens_report_renderers(self) -> list[Any]:  # type: ignore[empty-body]
        """Report formats: `.name` and `.render(report, output, factors) -> text or None (written)`."""


class Builtins:
    """wattlens' own protocols, feeds, scales and renderers, registered like any plugin."""

    @hookimpl
    def wattlens_protocols(self) -> list[WireProtocol]:
        from wattlens.protocols.anthropic import Anthropic
        from wattlens.protocols.openai import OpenAI

        return [OpenAI(), Anthropic()]

    @hookimpl
    def wattlens_grid_feeds(self) -> list[GridFeed]:
        from wattlens.grid import AnnualFeed
        from wattlens.grid.csvfeed import CsvFeed
        from wattlens.grid.electricitymaps import ElectricityMapsFeed
        from wattlens.grid.entsoe import EntsoeFeed
        from wattlens.grid.ukci import UkCarbonIntensityFeed
        from wattlens.grid.watttime import WattTimeFeed

        return [AnnualFeed(), CsvFeed(), ElectricityMapsFeed(), WattTimeFeed(), UkCarbonIntensityFeed(), EntsoeFeed()]

    @hookimpl
    def wattlens_rating_scales(self) -> list[Any]:
        from wattlens.score.scales import SCALES

        return list(SCALES)

    @hookimpl
    def wattlens_score_tasks(self) -> list[Any]:
        from wattlens.score.tasks import TASKS

        return list(TASKS)

    @hookimpl
    def wattlens_report_renderers(self) -> list[Any]:
        from wattlens.report.render import RENDERERS

        return list(RENDERERS)


@dataclass(frozen=True)
class Registry:
    protocols: dict[str, WireProtocol]
    grid_feeds: dict[str, GridFeed]
    rating_scales: dict[str, Any]
    score_tasks: dict[str, Any]
    renderers: dict[str, Any]


def _by_name(kind: str, results: list[list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for items in reversed(results):  # pluggy calls the last registered first: keep registration order
        for item in items or ():
            name = getattr(item, "name", None)
            if not isinstance(name, str) or not name:
                raise ConfigError(f"a plugin's {kind} has no name: {item!r}")
            if name in out:
                raise ConfigError(f"two {kind}s are named {name!r}: uninstall one of the plugins that register it")
            out[name] = item
    return out


def manager(entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(Specs)
    pm.register(Builtins(), name="wattlens.builtins")
    if entry_points:
        pm.load_setuptools_entrypoints(GROUP)
    return pm


@functools.cache
def registry() -> Registry:
    """Everything registered, built-ins and installed plugins, loaded on first use."""
    h = manager().hook
    return Registry(
        protocols=_by_name("protocol", h.wattlens_protocols()),
        grid_feeds=_by_name("grid feed", h.wattlens_grid_feeds()),
        rating_scales=_by_name("rating scale", h.wattlens_rating_scales()),
        score_tasks=_by_name("score task", h.wattlens_score_tasks()),
        renderers=_by_name("report renderer", h.wattlens_report_renderers()),
    )


def grid_feed(spec: str, options: Mapping[str, Any] | None = None) -> GridFeed:
    """A registered feed by name, or NAME:ARGUMENT for a feed that takes one (csv:FILE).

    options: the [grid] section's other keys (cache_dir, timeout_s, ...) for the live feeds.
    """
    feeds = registry().grid_feeds
    name, _, arg = spec.partition(":")
    if name not in feeds:
        raise ConfigError(f"unknown grid feed {name!r}; installed: {', '.join(sorted(feeds))}")
    feed = feeds[name]
    if getattr(feed, "takes_options", False):  # a live provider: its cache, time limit and credentials
        from wattlens.grid.http import FeedOptions

        return feed.configured(arg, FeedOptions.from_settings(options or {}))  # type: ignore[attr-defined,no-any-return]
    if arg:
        configure = getattr(feed, "configured", None)
        if configure is None:
            raise ConfigError(f"the grid feed {name!r} takes no argument (got {spec!r})")
        return configure(arg)  # type: ignore[no-any-return]
    return feed


__all__ = ["GROUP", "Registry", "grid_feed", "hookimpl", "hookspec", "manager", "registry"]
