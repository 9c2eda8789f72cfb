"""Scenarios with ``[[parts]]``: several workloads in one run, each with its own load and cells."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from scenario_toml import cell_table, open_load, part_table, toml_text

from loadgen.run.cell import cell_identity
from loadgen.scenario import ScenarioError, load_scenario

PARTS = toml_text(
    {
        "scenario": {
            "name": "matrix",
            "repeats": 2,
            "duration_s": 1,
            "warmup_s": 0.5,
            "tls_version": "1.2",
        },
        "network": {"profiles": ["loopback", "wan"]},
        "parts": [
            part_table(
                "echo",
                cell_table("http/aiohttp/new-connection", tls=True),
                "ws-aiohttp/aiohttp",
                payload_bytes=32,
                load=open_load(20),
            ),
            part_table(
                "messaging",
                cell_table("http/aiohttp", delivery="long-poll"),
                "ws-aiohttp/aiohttp",
                workload="messaging",
                realtime={"users": 8, "message_rate": 1.0, "drain_s": 2.0},
            ),
        ],
    }
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "parts.toml"
    path.write_text(text)
    return path


def test_parts_expand_into_prefixed_cells_grouped_by_profile(tmp_path: Path) -> None:
    spec = load_scenario(write(tmp_path, PARTS))
    ids = [rc.id for rc in spec.run_cells()]
    assert ids == [
        "echo:http/aiohttp/new-connection+tls~loopback",
        "echo:ws-aiohttp/aiohttp/persistent~loopback",
        "messaging:http/aiohttp/keep-alive/long-poll~loopback",
        "messaging:ws-aiohttp/aiohttp/persistent~loopback",
        "echo:http/aiohttp/new-connection+tls~wan",
        "echo:ws-aiohttp/aiohttp/persistent~wan",
        "messaging:http/aiohttp/keep-alive/long-poll~wan",
        "messaging:ws-aiohttp/aiohttp/persistent~wan",
    ]
    assert spec.workloads == ["echo", "messaging"]


def test_each_part_runs_under_its_own_settings(tmp_path: Path) -> None:
    spec = load_scenario(write(tmp_path, PARTS))
    by_part = {rc.part: rc.settings for rc in spec.run_cells()}
    echo, messaging = by_part["echo"], by_part["messaging"]
    assert echo.scenario.workload == "echo" and echo.realtime is None
    assert echo.scenario.payload_bytes == 32 and echo.load.rate == 20
    assert messaging.scenario.workload == "messaging"
    assert messaging.realtime is not None and messaging.realtime.users == 8
    # Shared tables reach every part.
    assert echo.scenario.tls_version == messaging.scenario.tls_version == "1.2"
    assert messaging.scenario.repeats == 2
    assert messaging.network is not None and len(messaging.network.profiles) == 2
    # WebSocket cells of a real-time part deliver by push.
    assert [c.delivery for c in messaging.cells] == ["long-poll", "push"]


def test_cell_identity_names_part_and_workload(tmp_path: Path) -> None:
    spec = load_scenario(write(tmp_path, PARTS))
    rows = [cell_identity(rc) for rc in spec.run_cells()]
    first, third = rows[0], rows[2]
    assert (first["part"], first["workload"], first["load_model"]) == ("echo", "echo", "open")
    assert first["tls"] == "1.2" and first["profile"] == "loopback"
    assert (third["part"], third["workload"], third["delivery"]) == (
        "messaging",
        "messaging",
        "long-poll",
    )


def test_estimate_counts_each_parts_drain(tmp_path: Path) -> None:
    spec = load_scenario(write(tmp_path, PARTS))
    # 2 profiles x (2 echo cells x 1.5 s + 2 messaging cells x 3.5 s) x 2 repeats
    assert spec.estimated_seconds() == pytest.approx(2 * (2 * 1.5 + 2 * 3.5) * 2)


OWN_LINKS_TABLES = dict(
    {
        "scenario": {"name": "own-links", "repeats": 1, "duration_s": 1, "warmup_s": 0.5},
        "parts": [
            part_table("local", "http/aiohttp/keep-alive", "ws-aiohttp/aiohttp"),
            part_table(
                "far",
                "http/aiohttp/new-connection",
                network={"profiles": ["loopback", "wan"]},
                load=open_load(20),
            ),
        ],
    }
)
OWN_LINKS = toml_text(OWN_LINKS_TABLES)


def test_a_part_with_its_own_links_runs_over_them_after_parts_without(tmp_path: Path) -> None:
    spec = load_scenario(write(tmp_path, OWN_LINKS))
    assert [rc.id for rc in spec.run_cells()] == [
        "local:http/aiohttp/keep-alive",
        "local:ws-aiohttp/aiohttp/persistent",
        "far:http/aiohttp/new-connection~loopback",
        "far:http/aiohttp/new-connection~wan",
    ]
    by_part = spec.part_scenarios()
    assert by_part["local"].network is None
    assert by_part["far"].network is not None
    # The run plans links for every profile any part uses, once each.
    network = spec.run_network()
    assert network is not None and [p.name for p in network.resolved()] == ["loopback", "wan"]


def test_a_parts_links_replace_the_shared_ones_and_profiles_merge(tmp_path: Path) -> None:
    text = toml_text({**OWN_LINKS_TABLES, "network": {"profiles": ["lan"]}})
    spec = load_scenario(write(tmp_path, text))
    ids = [rc.id for rc in spec.run_cells()]
    # "local" inherits [network] (lan); "far" has loopback and wan instead.
    assert sorted(ids) == sorted(
        [
            "local:http/aiohttp/keep-alive~lan",
            "local:ws-aiohttp/aiohttp/persistent~lan",
            "far:http/aiohttp/new-connection~loopback",
            "far:http/aiohttp/new-connection~wan",
        ]
    )
    network = spec.run_network()
    assert network is not None and [p.name for p in network.resolved()] == [
        "lan",
        "loopback",
        "wan",
    ]


def test_a_single_workload_scenario_needs_the_links_of_its_network(tmp_path: Path) -> None:
    spec = load_scenario(write(tmp_path, PARTS))
    assert spec.run_network() is not None
    assert [p.name for p in spec.run_network().resolved()] == ["loopback", "wan"]
    quick = load_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "sweep-quick.toml")
    assert quick.run_network() is quick.network


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # One run has one link emulator.
        (
            lambda t: t.replace(
                'name = "local"\n',
                'name = "local"\n[parts.network]\nprofiles = ["lan"]\nlink = "userspace"\n',
            ),
            "different 'link' values",
        ),
        # Two parts giving one profile name two meanings would mix their cells' links.
        (
            lambda t: t.replace(
                'name = "local"\n',
                'name = "local"\n[parts.network]\nprofiles = [{name = "wan", rtt_ms = 5}]\n',
            ),
            "profile 'wan' means one link",
        ),
        # A part's links are checked like [network]'s.
        (lambda t: t.replace('"wan"]', '"moon"]'), "parts.1.network: Value error, unknown link"),
    ],
)
def test_bad_part_links_are_refused(
    tmp_path: Path, edit: Callable[[str], str], message: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, edit(OWN_LINKS)))
    assert message in str(info.value), str(info.value)


def test_single_workload_scenario_has_no_parts(tmp_path: Path) -> None:
    spec = load_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "sweep-quick.toml")
    assert spec.part_scenarios() == {}
    assert all(rc.part is None and rc.settings is spec for rc in spec.run_cells())
    assert all(cell_identity(rc)["part"] is None for rc in spec.run_cells())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # cells and parts together: which cells belong where?
        (
            lambda t: t + '\n[[cells]]\ntransport = "http"\nclient = "aiohttp"\n',
            "either [[cells]] or [[parts]]",
        ),
        # [realtime] must sit in the part that uses it.
        (lambda t: t + "\n[realtime]\nusers = 4\n", "[parts.realtime]"),
        # workload is chosen per part.
        (
            lambda t: t.replace('name = "matrix"', 'name = "matrix"\nworkload = "messaging"'),
            "give 'workload' in each part",
        ),
        # Two parts with one name would give colliding cell ids.
        (lambda t: t.replace('name = "messaging"', 'name = "echo"'), "both named 'echo'"),
        # A real-time part without [parts.realtime] names the part and the problem.
        (
            lambda t: t.replace(
                "[parts.realtime]\nusers = 8\nmessage_rate = 1.0\ndrain_s = 2.0\n", ""
            ),
            "part 'messaging'",
        ),
        # An HTTP cell of a real-time part needs a delivery mode.
        (lambda t: t.replace('delivery = "long-poll"\n', ""), "part 'messaging'"),
        # Unknown keys inside a part are refused like anywhere else.
        (lambda t: t.replace('name = "echo"\n', 'name = "echo"\nrepeats = 3\n'), "unknown key"),
    ],
)
def test_bad_parts_are_refused(tmp_path: Path, edit: Callable[[str], str], message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, edit(PARTS)))
    assert message in str(info.value), str(info.value)


def test_part_file_stems_survive_fractional_rates() -> None:
    # Part files are named with Path.with_suffix; a dot in the stem would cut the name.
    from loadgen.run.files import slug as _slug

    stem = f"003-{_slug('echo:http/aiohttp/keep-alive@2.5rps~wan')}-r0"
    assert "." not in stem
    assert (Path("parts") / stem).with_suffix(".json").name == stem + ".json"
