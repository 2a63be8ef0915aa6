from __future__ import annotations

import io

import numpy as np
import pytest
import supervision as sv
from PIL import Image, ImageFont

from fo1_core.answers import CLASS_NAME_KEY, REGION_INDEX_KEY, parse_answer, to_detections
from fo1_core.fonts import characters_in, font_for
from fo1_core.render import (
    MIN_DRAWN_SIDE,
    PALETTE,
    _luminance,
    color_for_region,
    draw_answer,
    draw_proposals,
    fit_label,
    scene_scale,
    text_color_for_region,
)
from fo1_core.templates import region_token

GREY = 128
BOXES = np.array(
    [[10, 10, 60, 60], [70, 10, 120, 60], [40, 100, 180, 180], [130, 20, 190, 90]],
    dtype=np.float32,
)


def grey(width: int = MIN_DRAWN_SIDE, height: int = MIN_DRAWN_SIDE) -> np.ndarray:
    """An image drawn at its own size (`BOXES` lie in its top-left corner)."""
    return np.full((height, width, 3), GREY, dtype=np.uint8)


def answer_detections(text: str, masks: np.ndarray | None = None):
    return to_detections(parse_answer(text, num_regions=len(BOXES)), BOXES, masks=masks)


def bottom_edge_pixel(image: np.ndarray, box: np.ndarray) -> tuple[int, ...]:
    # The bottom edge is free of labels, which sit above the box.
    x = int((box[0] + box[2]) / 2)
    return tuple(int(v) for v in image[int(box[3]), x])


def test_region_colours_are_stable_and_distinct_for_neighbours() -> None:
    assert color_for_region(2) == color_for_region(2)
    colours = {color_for_region(i).as_hex() for i in range(10)}
    assert len(colours) == 10


def test_answer_box_is_drawn_in_its_region_colour_at_its_place() -> None:
    detections = answer_detections(f"<ground>cat</ground><objects>{region_token(2)}</objects>")
    image = draw_answer(grey(), detections)
    assert bottom_edge_pixel(image, BOXES[2]) == color_for_region(2).as_rgb()
    # Boxes the answer does not name stay untouched.
    assert bottom_edge_pixel(image, BOXES[0]) == (GREY, GREY, GREY)


def test_same_index_same_colour_in_proposals_and_answer() -> None:
    proposals = draw_proposals(grey(), BOXES)
    answer = draw_answer(
        grey(), answer_detections(f"<ground>x</ground><objects>{region_token(3)}</objects>")
    )
    for index in range(len(BOXES)):
        assert bottom_edge_pixel(proposals, BOXES[index]) == color_for_region(index).as_rgb()
    assert bottom_edge_pixel(answer, BOXES[3]) == bottom_edge_pixel(proposals, BOXES[3])


def test_proposals_label_every_box() -> None:
    image = draw_proposals(grey(), BOXES)
    for index, box in enumerate(BOXES):
        colour = np.array(color_for_region(index).as_rgb())
        # The label background, in the region's colour, sits just above the box's left corner.
        x1, y1 = int(box[0]), int(box[1])
        patch = image[max(0, y1 - 12) : y1 + 12, x1 : x1 + 12]
        assert (patch == colour).all(axis=-1).sum() > 20, index


def test_mask_is_tinted_with_the_region_colour() -> None:
    masks = np.zeros((len(BOXES), MIN_DRAWN_SIDE, MIN_DRAWN_SIDE), dtype=bool)
    masks[2, 120:170, 60:160] = True
    detections = answer_detections(
        f"<ground>cat</ground><objects>{region_token(2)}</objects>", masks=masks
    )
    image = draw_answer(grey(), detections)
    inside = image[145, 110].astype(int)
    colour = np.array(color_for_region(2).as_rgb())
    assert np.abs(inside - colour).sum() < np.abs(GREY - colour).sum()
    # Outside the mask but inside the box the image is unchanged.
    assert tuple(image[110, 50]) == (GREY, GREY, GREY)


def test_input_untouched_and_pil_or_array_give_the_same_rgb_array() -> None:
    source = grey()
    from_array = draw_proposals(source, BOXES)
    from_pil = draw_proposals(Image.fromarray(source), BOXES)
    assert (source == GREY).all()
    assert from_array.dtype == np.uint8 and from_array.shape == source.shape
    np.testing.assert_array_equal(from_array, from_pil)


@pytest.mark.parametrize(
    ("image", "grey"),
    [
        (Image.fromarray(np.full((384, 512), 20000, np.uint16)), 78),  # 16-bit: 20000 / 257
        (Image.new("RGBA", (512, 384), (0, 0, 0, 0)), 255),  # transparent: over white
    ],
    ids=["16-bit", "transparent"],
)
def test_a_pil_image_is_drawn_on_as_the_model_sees_it(image: Image.Image, grey: int) -> None:
    drawn = draw_answer(image, answer_detections("No cats."))
    assert drawn.shape == (384, 512, 3) and (drawn == grey).all()


def test_a_photo_turned_by_its_exif_tag_is_drawn_on_as_the_model_read_it() -> None:
    """A phone's photo opened with `Image.open`: the answer's boxes are in the picture as shown,
    upright, and were drawn on the pixels as stored, on their side."""
    stored = Image.new("RGB", (600, 400), (GREY,) * 3)
    exif = stored.getexif()
    exif[0x0112] = 6  # shown turned a quarter clockwise: 400 wide, 600 high
    data = io.BytesIO()
    stored.save(data, format="PNG", exif=exif.tobytes())
    box = np.array([[50, 450, 350, 590]], dtype=np.float32)  # low in the upright picture
    answer = parse_answer(f"<ground>cup</ground><objects>{region_token(0)}</objects>", 1)
    drawn = draw_answer(Image.open(data), to_detections(answer, box))
    assert drawn.shape == (600, 400, 3)
    assert bottom_edge_pixel(drawn, box[0]) == color_for_region(0).as_rgb()


def test_nothing_to_draw_returns_a_copy() -> None:
    source = grey()
    image = draw_answer(source, answer_detections("No cats."))
    np.testing.assert_array_equal(image, source)
    assert image is not source


def label_height(image: np.ndarray, box_top: int, colour: tuple[int, int, int]) -> int:
    """Rows above ``box_top`` that contain the label background colour."""
    rows = (image[:box_top] == np.array(colour)).all(axis=-1).any(axis=1)
    return int(rows.sum())


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (4000, 3000),  # large photo
        (200, 200),  # small crop
        (4000, 500),  # panorama
        (640, 480),  # typical web image
    ],
)
def test_labels_scale_with_the_image(width: int, height: int) -> None:
    box = np.array([[width * 0.3, height * 0.6, width * 0.7, height * 0.95]], dtype=np.float32)
    answer = parse_answer(f"<ground>cat</ground><objects>{region_token(1)}</objects>")
    detections = to_detections(answer, np.concatenate([box, box]))
    image = draw_answer(grey(width, height), detections)
    factor = image.shape[0] // height  # a small image is drawn enlarged
    assert image.shape[:2] == (height * factor, width * factor)
    text_rows = label_height(image, int(box[0, 1]) * factor, color_for_region(1).as_rgb())
    assert text_rows >= 12  # readable at 100 % zoom
    assert 0.01 * image.shape[0] <= text_rows <= 0.15 * image.shape[0]
    scale = scene_scale(width, height)
    assert scale.thickness >= 2 and scale.font_size >= 12


@pytest.mark.parametrize(
    "labels",
    [
        ("Straße", "Straøe"),  # Latin beyond ASCII
        ("猫", "犬"),  # Chinese (and Japanese kanji)
        ("ねこ", "いぬ"),  # Japanese kana
        ("고양이", "강아지"),  # Korean
        ("кошка", "собака"),  # Cyrillic
        ("قطة سوداء", "كلب"),  # Arabic (not in Noto CJK: drawn in DejaVu)
        ("חתול", "כלב"),  # Hebrew
        ("γάτα", "σκύλος"),  # Greek
        # `fonts-noto-core`'s script fonts (Thai's has no digits for the region tag: it is
        # merged with Noto Sans)
        ("แมว", "หมา"),  # Thai
        ("बिल्ली", "कुत्ता"),  # Devanagari
        ("বিড়াল", "কুকুর"),  # Bengali
        ("பூனை", "நாய்"),  # Tamil
    ],
)
def test_unicode_labels_are_drawn_as_glyphs(labels: tuple[str, str]) -> None:
    # `scripts/test.sh` installs the fonts the Space gets from `packages.txt`.
    assert font_for("".join(labels)) is not None, "no Unicode font: install packages.txt"
    boxes = np.array([[20, 100, 180, 180]], dtype=np.float32)
    text = "<ground>{}</ground><objects><region0></objects>"
    first, second = (
        draw_answer(grey(), to_detections(parse_answer(text.format(label)), boxes))
        for label in labels
    )
    # A font without these letters draws the same placeholder boxes for both.
    assert not np.array_equal(first, second)
    assert has_all("#0 " + "".join(labels), font_for("#0 " + "".join(labels)))


def has_all(text: str, font_path: str | None) -> bool:
    return font_path is not None and {ord(c) for c in text if c != " "} <= characters_in(font_path)


def test_labels_in_two_scripts_are_drawn_in_one_font_that_has_both() -> None:
    labels = "#0 แมว #1 बिल्ली #2 cat"
    assert has_all(labels, font_for(labels))


def contrast(first, second) -> float:
    lighter, darker = sorted((_luminance(first) + 0.05, _luminance(second) + 0.05), reverse=True)
    return lighter / darker


@pytest.mark.parametrize("index", range(len(PALETTE.colors)))
def test_label_text_is_readable_on_every_region_colour(index: int) -> None:
    # WCAG AA for normal text: 4.5:1. The old brightness rule gave white on cyan (1.8:1).
    assert contrast(color_for_region(index), text_color_for_region(index)) >= 4.5


@pytest.mark.parametrize(
    "label",
    [
        "#0 a very long label describing the cat sitting on the mat near the window",
        "#0 " + "猫" * 80,  # wide glyphs
        "#0 " + "x" * 50_000,  # a runaway answer
    ],
)
def test_a_label_wider_than_the_image_is_cut_to_fit(label: str) -> None:
    fitted = fit_label(label, font_size=12, padding=3, width=300, font_path=font_for(label))
    assert fitted.endswith("…") and label.startswith(fitted[:-1])
    font = ImageFont.truetype(font_for(label), 12)
    assert font.getlength(fitted) <= 300 - 2 * 3
    assert font.getlength(fitted[:-1] + label[len(fitted) - 1] + "…") > 300 - 2 * 3  # no shorter


@pytest.mark.parametrize("width", [12, 28, 40])
def test_a_tiny_image_keeps_each_labels_region_tag(width: int) -> None:
    label = "#12 a sleeping cat"
    fitted = fit_label(label, font_size=12, padding=3, width=width, font_path=font_for(label))
    assert fitted in ("#12", "#12…")


def test_a_label_that_fits_is_left_alone() -> None:
    assert fit_label("#3 cat", 12, padding=3, width=300, font_path=font_for("#3 cat")) == "#3 cat"


def test_a_tiny_image_is_drawn_enlarged_so_its_boxes_labels_and_masks_show() -> None:
    box = np.array([[5, 5, 30, 25]], dtype=np.float32)
    mask = np.zeros((1, 30, 40), bool)
    mask[0, 10:20, 10:20] = True
    answer = parse_answer(f"<ground>cup</ground><objects>{region_token(0)}</objects>", 1)
    image = draw_answer(grey(40, 30), to_detections(answer, box, masks=mask))
    factor = 13  # the smallest whole factor that brings 40 px to 512 or more
    assert image.shape == (30 * factor, 40 * factor, 3)
    assert bottom_edge_pixel(image, box[0] * factor) == color_for_region(0).as_rgb()
    assert tuple(image[15 * factor, 15 * factor]) != (GREY, GREY, GREY)  # the mask, tinted
    assert tuple(image[27 * factor, 35 * factor]) == (GREY, GREY, GREY)  # beside it, not
    assert label_height(image, int(box[0, 1]) * factor, color_for_region(0).as_rgb()) >= 12


PHONE_PANEL = 358
"""The page's result panel on a 390 px wide phone, in CSS px."""


@pytest.mark.parametrize(("width", "height"), [(600, 400), (1280, 960), (4000, 3000)])
def test_labels_read_on_the_phone_the_answer_is_shown_on(width: int, height: int) -> None:
    """A phone's panel shows a photo shrunk two to eleven times: its labels were 5–9 px high."""
    box = np.array([[width * 0.3, height * 0.6, width * 0.7, height * 0.95]], dtype=np.float32)
    answer = parse_answer(f"<ground>cat</ground><objects>{region_token(1)}</objects>")
    detections = to_detections(answer, np.concatenate([box, box]))
    image = draw_answer(grey(width, height), detections, shown_width=PHONE_PANEL)
    shrunk = image.shape[1] / PHONE_PANEL
    text_rows = label_height(image, int(box[0, 1]), color_for_region(1).as_rgb())
    assert text_rows / shrunk >= 14
    assert text_rows <= 0.3 * height  # the picture still shows
    # Shown at its own size or larger, it is drawn as for no known screen.
    wide = draw_answer(grey(width, height), detections, shown_width=width)
    np.testing.assert_array_equal(wide, draw_answer(grey(width, height), detections))


@pytest.mark.parametrize("shown_width", [1e-9, 1.0, float("nan"), float("inf"), -5.0, 0.0])
def test_a_made_up_panel_width_cannot_blow_the_drawing_up(shown_width: float) -> None:
    scale = scene_scale(600, 400, shown_width)
    assert scale.font_size <= 400 // 6 and scale.thickness <= scale.font_size // 4
    detections = answer_detections(f"<ground>cat</ground><objects>{region_token(2)}</objects>")
    assert draw_answer(grey(600, 400), detections, shown_width=shown_width).shape == (400, 600, 3)


def test_a_panoramas_labels_read_once_it_is_fitted_to_a_panel() -> None:
    """3000×400 shown 700 px wide: its labels are still about 9 px high or more."""
    scale = scene_scale(3000, 400)
    assert scale.font_size * 700 / 3000 >= 9
    assert scale.font_size + 2 * scale.padding <= 0.15 * 400


def test_a_region_named_under_several_labels_is_drawn_once_with_all_of_them() -> None:
    # Grounded captions may name one box twice ("man", "person"): stacked labels hid the tags.
    box = np.array([[40, 60, 300, 260]], dtype=np.float32)
    text = "".join(
        f"<ground>{label}</ground><objects>{region_token(0)}</objects>"
        for label in ("man", "person", "man")
    )
    drawn = draw_answer(grey(), to_detections(parse_answer(text, 1), box))
    once = sv.Detections(
        xyxy=box, data={CLASS_NAME_KEY: np.array(["man, person"]), REGION_INDEX_KEY: np.array([0])}
    )
    assert np.array_equal(drawn, draw_answer(grey(), once))


def test_masks_of_another_size_than_the_image_are_refused_by_name() -> None:
    box = np.array([[5, 5, 30, 25]], dtype=np.float32)
    answer = parse_answer(f"<ground>cup</ground><objects>{region_token(0)}</objects>", 1)
    detections = to_detections(answer, box, masks=np.ones((1, 30, 40), bool))
    with pytest.raises(ValueError, match="masks are 40×30 px but the image is 512×512 px"):
        draw_answer(grey(), detections)


def test_masks_of_a_large_image_are_drawn_on_it_reduced() -> None:
    """A photo over `MAX_SHOWN_SIDE` is shown reduced, its proposer's masks at its own size:
    every SAM3 answer on a 50-megapixel photo failed as masks "of another size"."""
    width, height = 5001, 3001  # odd sides: reduced by 2, they round up, as `Image.reduce`
    box = np.array([[1000, 1000, 3000, 2000]], dtype=np.float32)
    mask = np.zeros((1, height, width), bool)
    mask[0, 1200:1800, 1200:2800] = True
    answer = parse_answer(f"<ground>cup</ground><objects>{region_token(0)}</objects>", 1)
    reduced = Image.fromarray(grey(width, height)).reduce(2)
    image = draw_answer(reduced, to_detections(answer, box, masks=mask), reduced=2)
    assert image.shape == (1501, 2501, 3)
    assert tuple(image[750, 1000]) != (GREY, GREY, GREY)  # inside the mask, tinted
    assert tuple(image[1400, 2400]) == (GREY, GREY, GREY)  # past the box, untouched


def drawn_labels(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Collects the rectangles (x1, y1, x2, y2) of the labels of each drawing made after."""
    drawn: list[np.ndarray] = []
    draw_labels = sv.RichLabelAnnotator._draw_labels

    def spy(self, **kwargs):
        drawn.append(np.asarray(kwargs["label_properties"])[:, :4])
        return draw_labels(self, **kwargs)

    monkeypatch.setattr(sv.RichLabelAnnotator, "_draw_labels", spy)
    return drawn


@pytest.mark.parametrize(
    "boxes",
    [
        # A grounded caption's whole picture and a box in its corner: the picture's label sat
        # under the corner's, "#0 An astronaut" half hidden.
        [[0, 0, 512, 427], [0, 0, 70, 280], [140, 10, 300, 170], [340, 0, 470, 290]],
        # A hundred windows in ten rows: a tag in every row was hidden by its neighbour's label.
        [[x * 64, y * 42.7, x * 64 + 60, y * 42.7 + 40] for y in range(10) for x in range(10)],
    ],
    ids=["corner-of-the-whole", "grid"],
)
def test_no_label_covers_another(boxes: list[list[float]], monkeypatch) -> None:
    drawn = drawn_labels(monkeypatch)
    references = "".join(region_token(i) for i in range(len(boxes)))
    answer = parse_answer(f"<ground>window</ground><objects>{references}</objects>", len(boxes))
    draw_answer(grey(640, 427), to_detections(answer, np.array(boxes, dtype=np.float32)))
    rectangles = drawn[0]
    overlaps = sv.box_iou_batch(rectangles, rectangles)
    np.fill_diagonal(overlaps, 0)
    assert not overlaps.any()
    assert rectangles.min() >= 0
    assert (rectangles[:, 2] <= 640).all() and (rectangles[:, 3] <= 427).all()


def test_a_label_naming_a_region_writes_it_as_its_tag(monkeypatch) -> None:
    """A visual prompt's answer labels the coins like coin 0 `<region0>`: drawn as written, it
    read "#1 <region0>" over each box."""
    drawn = []
    annotate = sv.RichLabelAnnotator.annotate
    monkeypatch.setattr(
        sv.RichLabelAnnotator,
        "annotate",
        lambda self, scene, detections, labels, **kw: (
            drawn.append(labels) or annotate(self, scene, detections, labels=labels, **kw)
        ),
    )
    text = (
        f"<ground>{region_token(0)}</ground><objects>{region_token(1)}{region_token(2)}</objects>"
    )
    draw_answer(grey(), answer_detections(text))
    assert drawn == [["#1 #0", "#2 #0", "#0"]]  # region 0 too, named in the label
