"""Layout geometry: pure, synchronous, exhaustive."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.layout import (
    AGENT,
    AVATAR,
    LAYOUTS,
    SCREEN,
    SIZES,
    Rect,
    Size,
    compute_layout,
    fit,
    parse_size,
)

ALL = {AGENT, SCREEN, AVATAR}
HD = SIZES["720p"]


def by_name(tiles):
    return {tile.name: tile for tile in tiles}


def test_agent_layout_fills_the_canvas():
    (tile,) = compute_layout(HD, "agent", ALL)
    assert tile.name == AGENT
    assert tile.cell == Rect(0, 0, 1280, 720)


def test_screen_layout_puts_agent_picture_in_picture_bottom_right_on_top():
    tiles = compute_layout(HD, "screen", {SCREEN, AGENT})
    assert [t.name for t in tiles] == [SCREEN, AGENT]  # agent painted last, on top
    screen, agent = tiles
    assert screen.cell == Rect(0, 0, 1280, 720)
    assert agent.cell.width == 320 and agent.cell.height == 180
    assert agent.cell.right < 1280 and agent.cell.bottom < 720
    assert agent.cell.x > 640 and agent.cell.y > 360


def test_screen_layout_stacks_the_avatar_above_the_agent():
    screen, agent, avatar = compute_layout(HD, "screen", ALL)
    assert (screen.name, agent.name, avatar.name) == (SCREEN, AGENT, AVATAR)
    assert avatar.cell.x == agent.cell.x and avatar.cell.bottom < agent.cell.y


def test_side_by_side_splits_the_width():
    tiles = by_name(compute_layout(HD, "side_by_side", ALL))
    assert tiles[AGENT].cell == Rect(0, 0, 640, 720)
    assert tiles[SCREEN].cell == Rect(640, 0, 640, 720)


def test_avatar_layouts():
    assert [t.name for t in compute_layout(HD, "avatar", ALL)] == [AVATAR]
    assert [t.name for t in compute_layout(HD, "avatar_screen", ALL)] == [SCREEN, AVATAR]


@pytest.mark.parametrize(
    ("name", "present", "expected"),
    [
        ("screen", {AGENT}, [AGENT]),
        ("screen", {SCREEN}, [SCREEN]),
        ("side_by_side", {AGENT}, [AGENT]),
        ("avatar_screen", {AVATAR}, [AVATAR]),
        ("avatar_screen", {SCREEN}, [SCREEN]),
        ("agent", {SCREEN}, []),
        ("avatar", set(), []),
    ],
)
def test_absent_inputs_reflow_to_full_frame(name, present, expected):
    tiles = compute_layout(HD, name, present)
    assert [t.name for t in tiles] == expected
    for tile in tiles:
        assert tile.cell == Rect(0, 0, 1280, 720)


def test_letterboxing_keeps_aspect_and_centres():
    # A 4:3 camera in a 16:9 frame is pillarboxed.
    (tile,) = compute_layout(HD, "agent", ALL, {AGENT: Size(640, 480)})
    assert tile.content == Rect(160, 0, 960, 720)
    # A 16:9 screen in a half-width cell is letterboxed.
    tiles = by_name(compute_layout(HD, "side_by_side", ALL, {SCREEN: Size(1920, 1080)}))
    assert tiles[SCREEN].content == Rect(640, 180, 640, 360)


def test_unknown_layout_and_odd_canvas_are_rejected():
    with pytest.raises(ValueError, match="unknown layout"):
        compute_layout(HD, "mosaic", ALL)
    with pytest.raises(ValueError, match="even"):
        compute_layout(Size(641, 360), "agent", ALL)


def test_parse_size():
    assert parse_size("540p") == Size(960, 540)
    assert parse_size("1080p") == Size(1920, 1080)
    assert parse_size("320x240") == Size(320, 240)
    for bad in ("huge", "321x240", "0x0"):
        with pytest.raises(ValueError):
            parse_size(bad)


even = st.integers(min_value=8, max_value=2000).map(lambda v: v // 2 * 2)


@given(
    canvas=st.tuples(even, even).map(lambda wh: Size(*wh)),
    name=st.sampled_from(LAYOUTS),
    present=st.sets(st.sampled_from(sorted(ALL))),
    source=st.tuples(st.integers(1, 4000), st.integers(1, 4000)).map(lambda wh: Size(*wh)),
)
def test_every_tile_is_even_inside_the_canvas_and_aspect_correct(canvas, name, present, source):
    tiles = compute_layout(canvas, name, present, {n: source for n in ALL})
    assert {t.name for t in tiles} <= present
    for tile in tiles:
        for rect in (tile.cell, tile.content):
            assert rect.x % 2 == rect.y % 2 == rect.width % 2 == rect.height % 2 == 0
            assert rect.width >= 2 and rect.height >= 2
            assert 0 <= rect.x and rect.right <= canvas.width
            assert 0 <= rect.y and rect.bottom <= canvas.height
        c, cell = tile.content, tile.cell
        assert cell.x <= c.x and c.right <= cell.right and cell.y <= c.y and c.bottom <= cell.bottom
        # One side fills the cell (up to rounding) and the aspect ratio is kept within a pixel or two.
        assert cell.width - c.width <= 3 or cell.height - c.height <= 3
        if c.width > 8 and c.height > 8:
            assert abs(c.width / c.height - source.width / source.height) <= (
                4 / min(c.width, c.height) * (source.width / source.height) + 0.01
            )


def test_fit_degenerate_source_fills_cell():
    cell = Rect(2, 2, 10, 10)
    assert fit(Size(0, 5), cell) == cell
