"""Realistic mobile-game events: stream schemas and a fast, seeded event generator.

Why this exists: benchmarks, demos and load tests of the collector are only
meaningful on traffic that looks like a real game's. A free-to-play title sends
a handful of very common events (screen views, ad impressions, level starts,
currency movements) and a long tail of rare ones (errors, ad clicks, purchases),
each with a dozen typed fields, nested device info and small arrays, at a few
hundred bytes of JSON per event. Synthetic ``{"a": 1}`` events would make the
JSON, validation and log work look far cheaper than it is, and a uniform mix of
streams would hide the cost of splitting a mixed batch by stream.

``DEMO_SCHEMAS`` holds one schema per stream, written in the JSON Schema subset
that ``lakehose streams create`` accepts (type, properties, items, format
date-time, enum, required, minimum/maximum, maxLength; nothing else), with
``ts`` declared as a date-time and ``event_id`` as a string. Every event that
``DemoEvents.batch`` returns matches its stream's schema exactly (no unknown
fields) and names its stream in ``"type"``, so batches can be sent as they are
to the mixed endpoint ``POST /v1/events``.

``DemoEvents`` is deterministic given its seed and its ``now``: users, devices,
sessions and value pools are drawn once up front, and each event is then built
from a few draws on a ``random.Random``, so generating hundreds of thousands of
events takes seconds, not minutes.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEMO_CHARTS", "DEMO_DASHBOARD", "DEMO_SCHEMAS", "DEMO_WEIGHTS", "DemoEvents", "demo_schema_files"]

Schema = dict[str, Any]
Event = dict[str, Any]


# schema building blocks -------------------------------------------------------
def _string(max_length: int | None = None) -> Schema:
    node: Schema = {"type": "string"}
    if max_length is not None:
        node["maxLength"] = max_length
    return node


def _enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def _integer(minimum: int | None = None, maximum: int | None = None) -> Schema:
    node: Schema = {"type": "integer"}
    if minimum is not None:
        node["minimum"] = minimum
    if maximum is not None:
        node["maximum"] = maximum
    return node


def _number(minimum: float | None = None, maximum: float | None = None) -> Schema:
    node: Schema = {"type": "number"}
    if minimum is not None:
        node["minimum"] = minimum
    if maximum is not None:
        node["maximum"] = maximum
    return node


def _boolean() -> Schema:
    return {"type": "boolean"}


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _object(properties: dict[str, Schema], required: Sequence[str] = ()) -> Schema:
    node: Schema = {"type": "object", "properties": properties}
    if required:
        node["required"] = list(required)
    return node


PLATFORMS = ("ios", "android")
AD_NETWORKS = ("admob", "applovin", "unity_ads", "ironsource", "meta_audience_network",
               "mintegral", "vungle", "pangle")
AD_FORMATS = ("banner", "interstitial", "rewarded", "native", "app_open")
CURRENCY_TYPES = ("coins", "gems", "lives", "energy", "tickets")

_COMMON_PROPERTIES: dict[str, Schema] = {
    "event_id": _string(),
    "ts": {"type": "string", "format": "date-time"},
    "user_id": _string(64),
    "session_id": _string(64),
    "platform": _enum(*PLATFORMS),
    "app_version": _string(32),
    "country": _string(2),
    "device": _object({
        "os": _enum("iOS", "Android"),
        "os_version": _string(32),
        "model": _string(64),
    }, required=("os", "model")),
}
_COMMON_REQUIRED = ("user_id", "session_id", "platform", "app_version")


def _stream_schema(properties: dict[str, Schema], required: Sequence[str] = ()) -> Schema:
    return _object({**_COMMON_PROPERTIES, **properties}, (*_COMMON_REQUIRED, *required))


_LEVEL = _integer(1, 5000)
_DURATION_MS = _integer(0, 86_400_000)

DEMO_SCHEMAS: dict[str, Schema] = {
    "session_start": _stream_schema({
        "is_first_session": _boolean(),
        "install_source": _enum("organic", "google_ads", "meta_ads", "tiktok_ads",
                                "applovin", "unity_ads", "apple_search_ads"),
        "connection": _enum("wifi", "cellular", "offline"),
        "battery_pct": _integer(0, 100),
        "seconds_since_last_session": _integer(0),
    }, required=("is_first_session",)),
    "session_end": _stream_schema({
        "duration_ms": _DURATION_MS,
        "screens_viewed": _integer(0),
        "levels_played": _integer(0),
        "ended_by": _enum("background", "quit", "crash", "timeout"),
    }, required=("duration_ms",)),
    "screen_view": _stream_schema({
        "screen_name": _string(64),
        "previous_screen": _string(64),
        "load_ms": _integer(0),
    }, required=("screen_name",)),
    "level_start": _stream_schema({
        "level": _LEVEL,
        "world": _string(32),
        "difficulty": _enum("easy", "normal", "hard", "super_hard"),
        "attempt": _integer(1),
        "boosters": _array(_string(32)),
    }, required=("level",)),
    # Also examples/level_complete.schema.json, the README's first stream: its first curl sends
    # only user_id, level and a fractional score, so only those two are required.
    "level_complete": _object({
        **_COMMON_PROPERTIES,
        "level": _LEVEL,
        "world": _string(32),
        "mode": _enum("easy", "normal", "hard"),
        "score": _number(0),
        "stars": _integer(0, 3),
        "duration_ms": _DURATION_MS,
        "moves_left": _integer(0),
        "coins_earned": _integer(0),
        "boosters_used": _array(_string(32)),
    }, required=("user_id", "level")),
    "level_fail": _stream_schema({
        "level": _LEVEL,
        "world": _string(32),
        "score": _integer(0),
        "duration_ms": _DURATION_MS,
        "reason": _enum("out_of_moves", "out_of_time", "quit", "no_lives"),
        "progress_pct": _number(0, 100),
    }, required=("level", "reason")),
    "resource_flow": _stream_schema({
        "currency_type": _enum(*CURRENCY_TYPES),
        "flow": _enum("source", "sink"),
        "amount": _integer(0),
        "balance": _integer(0),
        "reason": _string(64),
        "item_id": _string(64),
    }, required=("currency_type", "flow", "amount")),
    "ad_impression": _stream_schema({
        "ad_network": _enum(*AD_NETWORKS),
        "ad_format": _enum(*AD_FORMATS),
        "placement": _string(64),
        "ad_unit_id": _string(64),
        "revenue": _number(0),
        "revenue_currency": _string(3),
        "precision": _enum("exact", "estimated", "publisher_defined"),
        "load_ms": _integer(0),
    }, required=("ad_network", "ad_format", "placement")),
    "ad_click": _stream_schema({
        "ad_network": _enum(*AD_NETWORKS),
        "ad_format": _enum(*AD_FORMATS),
        "placement": _string(64),
        "ad_unit_id": _string(64),
        "ms_since_impression": _integer(0),
    }, required=("ad_network", "ad_format", "placement")),
    "tutorial_step": _stream_schema({
        "step": _integer(1, 50),
        "step_name": _string(64),
        "completed": _boolean(),
        "duration_ms": _DURATION_MS,
    }, required=("step", "step_name")),
    "purchase": _stream_schema({
        "product_id": _string(128),
        "price": _number(0),
        "currency": _string(3),
        "store": _enum("app_store", "google_play"),
        "transaction_id": _string(128),
        "is_first_purchase": _boolean(),
        "items": _array(_object({"item_id": _string(64), "quantity": _integer(1)},
                                required=("item_id", "quantity"))),
    }, required=("product_id", "price", "currency", "store", "transaction_id")),
    "error": _stream_schema({
        "severity": _enum("warning", "error", "fatal"),
        "error_code": _string(64),
        "message": _string(512),
        "component": _string(64),
        "frames": _array(_string(256)),
    }, required=("severity", "error_code")),
    "achievement_unlocked": _stream_schema({
        "achievement_id": _string(64),
        "points": _integer(0),
        "level": _LEVEL,
    }, required=("achievement_id",)),
    "notification_open": _stream_schema({
        "campaign_id": _string(64),
        "notification_type": _enum("push", "local", "in_app"),
        "minutes_since_sent": _integer(0),
    }, required=("campaign_id", "notification_type")),
}

# Share of each stream in the traffic, in percent: a typical free-to-play game.
DEMO_WEIGHTS: dict[str, float] = {
    "screen_view": 22.0,
    "ad_impression": 20.0,
    "level_start": 12.0,
    "resource_flow": 10.0,
    "level_complete": 8.0,
    "level_fail": 5.5,
    "session_start": 6.0,
    "session_end": 5.0,
    "tutorial_step": 2.6,
    "error": 1.2,
    "ad_click": 0.8,
    "notification_open": 0.6,
    "achievement_unlocked": 0.2,
    "purchase": 0.1,
}


# The sample dashboard ``lakehose send --demo`` creates (the README's screenshot): name, view,
# width and height on the 12-column grid, and the Explore question of each chart.
DEMO_DASHBOARD = "Game overview"
DEMO_CHARTS: tuple[tuple[str, str, int, int, dict[str, Any]], ...] = (
    ("Sessions", "number", 4, 2, {"stream": "session_start", "range": "7d"}),
    ("Players", "number", 4, 2, {"stream": "session_start", "metric": "unique", "range": "7d"}),
    ("Purchases (sum of price)", "number", 4, 2,
     {"stream": "purchase", "metric": "sum", "field": "price", "range": "7d"}),
    ("Levels completed per hour", "line", 8, 4,
     {"stream": "level_complete", "grain": "hour", "group_by": ["platform"], "range": "7d"}),
    ("Ad impressions by network", "bar", 4, 4,
     {"stream": "ad_impression", "group_by": ["ad_network"], "range": "7d"}),
    ("Level time p90 (ms)", "area", 6, 4,
     {"stream": "level_complete", "metric": "p90", "field": "duration_ms", "grain": "day", "range": "7d"}),
    ("Why levels fail", "bar", 6, 4,
     {"stream": "level_fail", "group_by": ["reason", "platform"], "range": "7d"}),
)


def demo_schema_files(directory: str | Path) -> dict[str, Path]:
    """Write each demo schema to ``DIRECTORY/<stream>.schema.json``; returns the paths."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, schema in DEMO_SCHEMAS.items():
        path = folder / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2) + "\n")
        paths[name] = path
    return paths


# value pools ----------------------------------------------------------------
_IOS_MODELS = ("iPhone15,2", "iPhone15,3", "iPhone14,5", "iPhone14,7", "iPhone16,1", "iPhone16,2",
               "iPhone13,2", "iPhone12,1", "iPhone17,3", "iPad13,18")
_IOS_VERSIONS = ("17.6.1", "18.1", "18.2.1", "18.3", "16.7.10", "17.5", "18.0.1")
_ANDROID_MODELS = ("SM-A155F", "SM-A546B", "SM-S918B", "SM-G991B", "Redmi Note 13", "Pixel 8",
                   "Pixel 7a", "CPH2591", "moto g54 5G", "22101316G", "V2231", "SM-A057F",
                   "TECNO KI5q", "Infinix X6831")
_ANDROID_VERSIONS = ("14", "13", "12", "15", "11", "10")
# Countries, most common first; drawn with a skew toward the front.
_COUNTRIES = ("US", "BR", "IN", "DE", "GB", "FR", "MX", "ID", "JP", "TR", "PH", "RU", "KR",
              "CA", "IT", "ES", "PL", "VN", "TH", "AR", "EG", "NG", "AU", "SA", "NL")
_APP_VERSIONS = ("3.14.2", "3.14.1", "3.14.0", "3.13.5", "3.12.9", "3.11.0")
_SCREENS = ("home", "map", "level_select", "shop", "settings", "inventory", "event_hub",
            "daily_rewards", "leaderboard", "profile", "friends", "battle_pass", "mailbox",
            "offer_popup", "level_result")
_WORLDS = ("candy_valley", "frost_peaks", "desert_ruins", "jungle_temple", "neon_city",
           "sky_islands", "lava_core")
_BOOSTERS = ("hammer", "shuffle", "extra_moves", "color_bomb", "rocket", "freeze_time")
_PLACEMENTS = ("level_end_interstitial", "rewarded_extra_moves", "rewarded_daily_chest",
               "home_banner", "shop_free_gems", "rewarded_revive", "app_open")
_RESOURCE_REASONS = {
    "source": ("level_reward", "daily_bonus", "ad_reward", "purchase", "chest_open", "quest"),
    "sink": ("buy_booster", "continue_level", "unlock_world", "refill_lives", "cosmetic"),
}
_ITEMS = ("booster_hammer", "booster_rocket", "skin_pirate", "skin_ninja", "chest_gold",
          "lives_refill", "world_unlock_lava")
_TUTORIAL_STEPS = ("welcome", "first_match", "use_booster", "open_map", "first_level_win",
                   "daily_reward", "shop_intro", "lives_intro", "events_intro", "tutorial_done")
_PRODUCTS = (("gems_small", 0.99), ("gems_medium", 4.99), ("starter_pack", 2.99),
             ("no_ads", 5.99), ("gems_large", 19.99), ("battle_pass", 9.99), ("mega_bundle", 49.99))
_STORE_CURRENCIES = (("USD", 1.0), ("EUR", 0.93), ("BRL", 5.0), ("INR", 83.0), ("GBP", 0.79),
                     ("JPY", 150.0))
_ERRORS = (
    ("warning", "NET_TIMEOUT", "request to config endpoint timed out after 10000 ms", "remote_config"),
    ("error", "ASSET_MISSING", "bundle 'world_lava_core' missing texture atlas_03.png", "asset_loader"),
    ("error", "IAP_VERIFY_FAIL", "receipt verification failed: status 21007", "store"),
    ("warning", "AD_NO_FILL", "no fill for placement after 3 waterfall steps", "ads"),
    ("fatal", "OOM", "out of memory allocating 33554432 bytes for render target", "renderer"),
    ("error", "SAVE_CONFLICT", "cloud save conflict: local version 41 < remote 43", "cloud_save"),
)
_FRAMES = ("GameManager.LoadLevel(Int32 level)", "AssetBundleLoader.Load(String name)",
           "UnityEngine.Networking.UnityWebRequest.SendWebRequest()",
           "StoreController.OnPurchaseComplete(Product p)", "Renderer.Allocate(Int32 bytes)",
           "SaveSystem.Sync()")
_ACHIEVEMENTS = ("first_win", "ten_stars", "combo_master", "world_1_complete", "no_boosters_win",
                 "daily_streak_7", "big_spender", "social_butterfly")
_CAMPAIGNS = ("winback_d7", "lives_full", "event_start_halloween", "daily_reward_ready",
              "offer_weekend_50")


@dataclass(frozen=True)
class _User:
    user_id: str
    session_id: str
    platform: str
    app_version: str
    country: str
    device: tuple[tuple[str, str], ...]
    level: int


class DemoEvents:
    """A seeded source of realistic mixed batches of mobile-game events.

    ``now`` (Unix seconds, default: the time of construction) anchors the
    events' ``ts``: each lies up to five minutes before it, as a mobile SDK
    flushes its queue with some delay. With ``days`` the events are spread over
    that many days before ``now`` instead, busier in the evening (UTC) and on
    the latest days, so that charts of a demo have a shape; benchmarks keep the
    default, whose events fill one day partition as live traffic does. Given
    the same ``seed``, ``now`` and ``days`` the same batches come out, in the
    same order.
    """

    def __init__(self, seed: int = 0, *, now: float | None = None, users: int = 5000,
                 days: float = 0) -> None:
        self._rng = random.Random(seed)
        self._now_ms = int((time.time() if now is None else now) * 1000)
        self._spread_ms = int(days * 86_400_000)
        self._users = [self._make_user(i) for i in range(users)]
        self._names = list(DEMO_WEIGHTS)
        self._cum_weights: list[float] = []
        total = 0.0
        for name in self._names:
            total += DEMO_WEIGHTS[name]
            self._cum_weights.append(total)
        self._second_prefix: dict[int, str] = {}
        self._builders: dict[str, Callable[[random.Random, _User], Event]] = {
            "session_start": _session_start, "session_end": _session_end,
            "screen_view": _screen_view, "level_start": _level_start,
            "level_complete": _level_complete, "level_fail": _level_fail,
            "resource_flow": _resource_flow, "ad_impression": _ad_impression,
            "ad_click": _ad_click, "tutorial_step": _tutorial_step, "purchase": _purchase,
            "error": _error, "achievement_unlocked": _achievement, "notification_open": _notification,
        }

    def _make_user(self, index: int) -> _User:
        rng = self._rng
        ios = rng.random() < 0.38
        if ios:
            device = (("os", "iOS"), ("os_version", rng.choice(_IOS_VERSIONS)),
                      ("model", rng.choice(_IOS_MODELS)))
        else:
            device = (("os", "Android"), ("os_version", rng.choice(_ANDROID_VERSIONS)),
                      ("model", rng.choice(_ANDROID_MODELS)))
        country = _COUNTRIES[int(len(_COUNTRIES) * rng.random() ** 2)]
        app_version = _APP_VERSIONS[int(len(_APP_VERSIONS) * rng.random() ** 3)]
        return _User(
            user_id=f"u_{rng.getrandbits(48):012x}",
            session_id=f"{rng.getrandbits(64):016x}",
            platform="ios" if ios else "android",
            app_version=app_version,
            country=country,
            device=device,
            level=1 + int(400 * rng.random() ** 2),
        )

    def _timestamp(self) -> str:
        # Most events arrive within seconds, a few after minutes in the SDK's queue.
        ms = self._now_ms - int(300_000 * self._rng.random() ** 4)
        if self._spread_ms:
            ms -= self._spread_offset_ms()
        second, milli = divmod(ms, 1000)
        prefix = self._second_prefix.get(second)
        if prefix is None:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second_prefix[second] = prefix
        return f"{prefix}.{milli:03d}Z"

    def _spread_offset_ms(self) -> int:
        """How long before ``now`` an event of a spread demo happened: a daily cycle peaking
        at 20:00 UTC at three times the 08:00 trough, and a third more traffic on the last
        day than on the first (drawn by rejection, about two draws an event)."""
        rng = self._rng
        while True:
            offset = int(self._spread_ms * rng.random())
            hour = (self._now_ms - offset) / 3_600_000 % 24
            daily = 2 - math.cos((hour - 8) * math.pi / 12)  # 1 at 08:00, 3 at 20:00
            growth = 1 - offset / self._spread_ms / 4  # 1 now, 0.75 at the start
            if 3 * rng.random() < daily * growth:
                return offset

    def batch(self, n: int) -> list[Event]:
        """``n`` events of mixed streams, each with ``"type"`` set to its stream."""
        rng = self._rng
        users = self._users
        n_users = len(users)
        builders = self._builders
        types = rng.choices(self._names, cum_weights=self._cum_weights, k=n)
        events: list[Event] = []
        for name in types:
            # A few heavy players send much of the traffic.
            user = users[int(n_users * rng.random() ** 2)]
            bits = rng.getrandbits(128)
            event: Event = {
                "type": name,
                "event_id": f"{bits >> 96:08x}-{(bits >> 80) & 0xFFFF:04x}-4"
                            f"{(bits >> 68) & 0xFFF:03x}-a{(bits >> 52) & 0xFFF:03x}-"
                            f"{bits & 0xFFFFFFFFFFFF:012x}",
                "ts": self._timestamp(),
                "user_id": user.user_id,
                "session_id": user.session_id,
                "platform": user.platform,
                "app_version": user.app_version,
                "country": user.country,
                "device": dict(user.device),
            }
            event.update(builders[name](rng, user))
            events.append(event)
        return events


# per-stream fields -----------------------------------------------------------
def _session_start(rng: random.Random, user: _User) -> Event:
    first = rng.random() < 0.04
    return {
        "is_first_session": first,
        "install_source": rng.choice(("organic", "organic", "organic", "google_ads", "meta_ads",
                                      "tiktok_ads", "applovin", "unity_ads", "apple_search_ads")),
        "connection": "wifi" if rng.random() < 0.62 else ("cellular" if rng.random() < 0.97 else "offline"),
        "battery_pct": rng.randint(3, 100),
        "seconds_since_last_session": 0 if first else int(86_400 * rng.random() ** 3),
    }


def _session_end(rng: random.Random, user: _User) -> Event:
    return {
        "duration_ms": int(1_800_000 * rng.random() ** 2) + 4_000,
        "screens_viewed": rng.randint(1, 60),
        "levels_played": int(12 * rng.random() ** 2),
        "ended_by": "background" if rng.random() < 0.8 else rng.choice(("quit", "crash", "timeout")),
    }


def _screen_view(rng: random.Random, user: _User) -> Event:
    return {
        "screen_name": _SCREENS[int(len(_SCREENS) * rng.random() ** 2)],
        "previous_screen": _SCREENS[int(len(_SCREENS) * rng.random() ** 2)],
        "load_ms": int(2_500 * rng.random() ** 3) + 16,
    }


def _level_start(rng: random.Random, user: _User) -> Event:
    count = int(3 * rng.random() ** 3)
    return {
        "level": user.level,
        "world": _WORLDS[min(user.level // 60, len(_WORLDS) - 1)],
        "difficulty": "normal" if rng.random() < 0.7 else rng.choice(("easy", "hard", "super_hard")),
        "attempt": 1 + int(8 * rng.random() ** 4),
        "boosters": rng.sample(_BOOSTERS, count),
    }


def _level_complete(rng: random.Random, user: _User) -> Event:
    count = int(3 * rng.random() ** 3)
    return {
        "level": user.level,
        "world": _WORLDS[min(user.level // 60, len(_WORLDS) - 1)],
        "mode": "normal" if rng.random() < 0.7 else rng.choice(("easy", "hard")),
        "score": rng.randint(1_000, 250_000),
        "stars": rng.randint(1, 3),
        "duration_ms": rng.randint(25_000, 400_000),
        "moves_left": int(15 * rng.random() ** 2),
        "coins_earned": rng.choice((10, 20, 25, 50, 100)),
        "boosters_used": rng.sample(_BOOSTERS, count),
    }


def _level_fail(rng: random.Random, user: _User) -> Event:
    return {
        "level": user.level,
        "world": _WORLDS[min(user.level // 60, len(_WORLDS) - 1)],
        "score": rng.randint(0, 120_000),
        "duration_ms": rng.randint(10_000, 300_000),
        "reason": rng.choice(("out_of_moves", "out_of_moves", "out_of_moves", "out_of_time",
                              "quit", "no_lives")),
        "progress_pct": round(100 * rng.random(), 1),
    }


def _resource_flow(rng: random.Random, user: _User) -> Event:
    flow = "source" if rng.random() < 0.55 else "sink"
    currency = CURRENCY_TYPES[int(len(CURRENCY_TYPES) * rng.random() ** 2)]
    amount = rng.choice((1, 5, 10, 25, 50, 100, 250, 900))
    return {
        "currency_type": currency,
        "flow": flow,
        "amount": amount,
        "balance": int(20_000 * rng.random() ** 3) + (amount if flow == "source" else 0),
        "reason": rng.choice(_RESOURCE_REASONS[flow]),
        "item_id": rng.choice(_ITEMS),
    }


def _ad_impression(rng: random.Random, user: _User) -> Event:
    fmt = AD_FORMATS[int(len(AD_FORMATS) * rng.random() ** 1.5)]
    network = AD_NETWORKS[int(len(AD_NETWORKS) * rng.random() ** 2)]
    # eCPM in USD: banners cents, rewarded video tens of dollars; revenue is per impression.
    ecpm = {"banner": 0.4, "interstitial": 8.0, "rewarded": 14.0, "native": 2.0, "app_open": 5.0}[fmt]
    return {
        "ad_network": network,
        "ad_format": fmt,
        "placement": rng.choice(_PLACEMENTS),
        "ad_unit_id": f"{network[:3]}-{fmt[:3]}-{rng.randint(1000, 1015)}",
        "revenue": round(ecpm * (0.2 + 1.6 * rng.random()) / 1000.0, 8),
        "revenue_currency": "USD",
        "precision": "exact" if rng.random() < 0.7 else "estimated",
        "load_ms": int(3_000 * rng.random() ** 3) + 40,
    }


def _ad_click(rng: random.Random, user: _User) -> Event:
    fmt = AD_FORMATS[int(len(AD_FORMATS) * rng.random() ** 1.5)]
    network = AD_NETWORKS[int(len(AD_NETWORKS) * rng.random() ** 2)]
    return {
        "ad_network": network,
        "ad_format": fmt,
        "placement": rng.choice(_PLACEMENTS),
        "ad_unit_id": f"{network[:3]}-{fmt[:3]}-{rng.randint(1000, 1015)}",
        "ms_since_impression": int(30_000 * rng.random() ** 2) + 300,
    }


def _tutorial_step(rng: random.Random, user: _User) -> Event:
    step = 1 + int(len(_TUTORIAL_STEPS) * rng.random() ** 1.5)
    return {
        "step": step,
        "step_name": _TUTORIAL_STEPS[step - 1],
        "completed": rng.random() < 0.93,
        "duration_ms": int(60_000 * rng.random() ** 2) + 500,
    }


def _purchase(rng: random.Random, user: _User) -> Event:
    product, usd = _PRODUCTS[int(len(_PRODUCTS) * rng.random() ** 2)]
    currency, rate = _STORE_CURRENCIES[int(len(_STORE_CURRENCIES) * rng.random() ** 2)]
    ios = user.platform == "ios"
    return {
        "product_id": f"com.example.puzzle.{product}",
        "price": round(usd * rate, 0 if currency == "JPY" else 2),
        "currency": currency,
        "store": "app_store" if ios else "google_play",
        "transaction_id": (f"{rng.randint(10**14, 10**15 - 1)}" if ios
                           else f"GPA.{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}-"
                                f"{rng.randint(1000, 9999)}-{rng.randint(10000, 99999)}"),
        "is_first_purchase": rng.random() < 0.3,
        "items": [{"item_id": item, "quantity": rng.choice((1, 1, 1, 3, 5))}
                  for item in rng.sample(_ITEMS, rng.randint(1, 3))],
    }


def _error(rng: random.Random, user: _User) -> Event:
    severity, code, message, component = _ERRORS[int(len(_ERRORS) * rng.random() ** 1.5)]
    return {
        "severity": severity,
        "error_code": code,
        "message": message,
        "component": component,
        "frames": rng.sample(_FRAMES, rng.randint(1, 3)),
    }


def _achievement(rng: random.Random, user: _User) -> Event:
    return {
        "achievement_id": rng.choice(_ACHIEVEMENTS),
        "points": rng.choice((5, 10, 25, 50, 100)),
        "level": user.level,
    }


def _notification(rng: random.Random, user: _User) -> Event:
    return {
        "campaign_id": rng.choice(_CAMPAIGNS),
        "notification_type": "push" if rng.random() < 0.75 else rng.choice(("local", "in_app")),
        "minutes_since_sent": int(720 * rng.random() ** 3),
    }
