"""Boxes read from the files people bring them in: the app's own proposals and answers, a COCO
annotations file, a LabelMe or a Pascal VOC annotation, a Label Studio or a CVAT export. Light
(no torch), so that a command line reads them before the model loads.

COCO, LabelMe, VOC and CVAT files record the size of the image their boxes were drawn on. Where the
user's image is a copy of the same shape at another size (a photo resized for the web), the boxes
are scaled to it; where its shape differs, they were drawn on another image, and are refused.
Label Studio's are percentages of the image, whatever its size."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from detect_tools.box_rules import is_number
from fo1_core.errors import FO1Error


@dataclass(frozen=True)
class BoxesRead:
    """The boxes of a boxes file, as corners `[x1, y1, x2, y2]` in the file's order. An entry
    that is no box is passed on as it is, for the caller's checks to name."""

    boxes: object
    scaled: str | None = None
    """Where the boxes were scaled to the image, how (to follow "N boxes set …, ")."""
    labels: tuple[str, ...] = ()
    """The name the file gives each box (its class: `cup`), "" where none; none from a file
    that names no box."""


@dataclass(frozen=True)
class NotABox:
    """An entry of a boxes file that cannot be a box, and why (to follow "Box #i ")."""

    why: str


def unwrap_boxes(
    document: object, image_name: str | None = None, image_size: tuple[int, int] | None = None
) -> BoxesRead:
    """The box list in a boxes document: the app's `/propose` result or answer JSON
    (`{"boxes": [...]}`), `python -m detect_tools --json`'s (`{"proposals": [{"box": ...}]}`),
    a COCO annotations file (`coco_boxes`), a LabelMe annotation (`labelme_boxes`) or a Label
    Studio export (`label_studio_boxes`); anything else is passed on unchanged, for
    `check_boxes` to judge. `image_name` and `image_size`: the image the boxes are for, which
    picks its boxes out of a file of several images and scales them to it."""
    tasks = document if isinstance(document, list) else [document]
    if tasks and all(_is_label_studio_task(task) for task in tasks):
        return label_studio_boxes(tasks, image_name, image_size)
    if tasks and all(_is_label_studio_record(task) for task in tasks):
        as_tasks = [_label_studio_task(record) for record in tasks]
        return label_studio_boxes(as_tasks, image_name, image_size)
    if isinstance(document, dict) and isinstance(document.get("annotations"), list):
        return coco_boxes(document, image_name, image_size)
    if isinstance(document, dict) and isinstance(document.get("shapes"), list):
        return labelme_boxes(document, image_size)
    for key in ("boxes", "proposals"):
        if isinstance(document, dict) and key in document:
            entries = document[key]
            if not isinstance(entries, list):
                return BoxesRead(entries)
            return BoxesRead(
                [entry.get("box") if isinstance(entry, dict) else entry for entry in entries]
            )
    return BoxesRead(document)


def coco_boxes(
    document: dict, image_name: str | None, image_size: tuple[int, int] | None = None
) -> BoxesRead:
    """The boxes of a COCO annotations file (`bbox`: x, y, width, height) as corners, in the
    file's order: those of its one image, or of the image named `image_name` (its file name,
    folders aside) where it holds several; scaled to `image_size` where the file records its
    image at another size."""
    annotations = [entry for entry in document["annotations"] if isinstance(entry, dict)]
    # As text: an id may be anything in a hand-written file, a list included.
    images = {str(entry.get("image_id")) for entry in annotations}
    listed = document.get("images")
    recorded = {
        str(image.get("id")): image
        for image in (listed if isinstance(listed, list) else [])
        if isinstance(image, dict)
    }
    if len(images) > 1:
        names = {id_: str(recorded.get(id_, {}).get("file_name", id_)) for id_ in images}
        images = _images_named(names, image_name, "The COCO file holds boxes of")
        annotations = [entry for entry in annotations if str(entry.get("image_id")) in images]
    image = recorded.get(next(iter(images)), {}) if len(images) == 1 else {}
    boxes = [_corners(entry.get("bbox")) for entry in annotations]
    listed = document.get("categories")
    categories = {
        str(category.get("id")): category.get("name")
        for category in (listed if isinstance(listed, list) else [])
        if isinstance(category, dict)
    }
    labels = [categories.get(str(entry.get("category_id"))) for entry in annotations]
    size = (image.get("width"), image.get("height"))
    return _fitted(boxes, size, image_size, "COCO file", labels)


def _images_named(names: dict[str, str], image_name: str | None, holds: str) -> set[str]:
    """The keys of the images of `names` (a key → its file name) that are `image_name`
    (`is_named`). Where none is, raises `FO1Error`: `holds` ("The COCO file holds boxes of") so
    many images, a few named."""
    name = Path(image_name).name if image_name else None
    wanted = {key for key, stored in names.items() if name and is_named(stored, name)}
    if not wanted:
        named = sorted(Path(stored).name for stored in names.values())
        listed = ", ".join(named[:3])
        more = f" and {len(named) - 3} more" if len(named) > 3 else ""
        which = f"none is named {name}" if name else "give the boxes of one"
        raise FO1Error(f"{holds} {len(named)} images ({listed}{more}): {which}.")
    return wanted


_LABEL_STUDIO_UPLOAD = re.compile(r"[0-9a-f]{8}-(?P<name>.+)")
_ROBOFLOW_EXPORT = re.compile(r"(?P<stem>.+)_(?P<suffix>[A-Za-z0-9]+)\.rf\.[0-9A-Za-z]{16,}\.\w+")


def is_named(stored: str, image_name: str) -> bool:
    """Whether `stored`, an image's name in a labels file (a path, a URL), is the user's image
    file `image_name`: folders aside, as it is or as a labelling tool renamed it on the way in,
    Label Studio's uploads `<8 hex digits>-cat.jpg`, Roboflow's exports `cat_jpg.rf.<hash>.jpg`."""
    name = Path(stored).name
    if name == image_name:
        return True
    if upload := _LABEL_STUDIO_UPLOAD.fullmatch(name):
        return upload["name"] == image_name
    if export := _ROBOFLOW_EXPORT.fullmatch(name):
        return f"{export['stem']}.{export['suffix']}" == image_name
    return False


def _corners(bbox: object) -> object:
    """A COCO `bbox` (x, y, width, height) as corners; anything else as it is."""
    if not isinstance(bbox, list) or len(bbox) != 4:
        return bbox
    if not all(is_number(value) for value in bbox):
        return bbox
    x, y, width, height = bbox
    return [x, y, x + width, y + height]


def labelme_boxes(document: dict, image_size: tuple[int, int] | None = None) -> BoxesRead:
    """The boxes of a LabelMe annotation (`shapes`, one file an image), in the file's order: a
    rectangle's or a mask's corners, a polygon's extent, a circle's (its centre and a point of
    its edge); scaled to `image_size` where the file records its image (`imageWidth`,
    `imageHeight`) at another size. A point or a line has no box: it is passed on as `NotABox`,
    for the caller to refuse."""
    boxes = [_labelme_box(shape) for shape in document["shapes"]]
    labels = [
        shape.get("label") if isinstance(shape, dict) else None for shape in document["shapes"]
    ]
    recorded = (document.get("imageWidth"), document.get("imageHeight"))
    return _fitted(boxes, recorded, image_size, "LabelMe file", labels)


def _labelme_box(shape: object) -> object:
    points = shape.get("points") if isinstance(shape, dict) else None
    if not isinstance(points, list) or not all(_is_point(point) for point in points):
        return shape
    kind = shape.get("shape_type") or "polygon"
    xs, ys = [x for x, _ in points], [y for _, y in points]
    if kind in ("rectangle", "mask", "polygon") and len(points) >= 2:
        return [min(xs), min(ys), max(xs), max(ys)]
    if kind == "circle" and len(points) == 2:
        (x, y), edge = points
        radius = math.dist((x, y), edge)
        return [x - radius, y - radius, x + radius, y + radius]
    return NotABox(
        f"is a LabelMe {kind}, which has no area: FO1 reads rectangles, polygons, circles"
    )


def _is_label_studio_task(task: object) -> bool:
    """A task of Label Studio's JSON export: its data (the image) and what was marked on it."""
    return (
        isinstance(task, dict)
        and isinstance(task.get("data"), dict)
        and any(isinstance(task.get(key), list) for key in ("annotations", "predictions"))
    )


def _is_label_studio_record(record: object) -> bool:
    """A record of Label Studio's JSON-MIN export: one annotation of a task, its data (the
    image) and its regions under their controls' names, flat."""
    return isinstance(record, dict) and "annotation_id" in record


def _label_studio_task(record: dict) -> dict:
    """A JSON-MIN record as the task of Label Studio's JSON export it was made from: its texts
    as the task's data, its regions (each a result's value, with the image's size beside) as
    the results of its one annotation."""
    results = [
        {
            "type": _labels_key(region) or "region",
            "value": region,
            "original_width": region.get("original_width"),
            "original_height": region.get("original_height"),
        }
        for regions in record.values()
        if isinstance(regions, list)
        for region in regions
        if isinstance(region, dict)
    ]
    data = {key: value for key, value in record.items() if isinstance(value, str)}
    return {"data": data, "annotations": [{"result": results}]}


def label_studio_boxes(
    tasks: list[dict], image_name: str | None, image_size: tuple[int, int] | None = None
) -> BoxesRead:
    """The boxes of a Label Studio export (its JSON: a task per image): those of its one task,
    or of the first task whose image is named `image_name` (Label Studio names an upload
    `<id>-<name>`). Of the task's first annotation (else prediction), each rectangle, from its
    percentages of the image, and each polygon's extent, in its order; a result that marks no
    region (a choice, a text) is left out, one with no area is passed on as `NotABox`."""
    if len(tasks) > 1:
        name = Path(image_name).name if image_name else None
        named = [task for task in tasks if name and _stored_as(task["data"], name)]
        if not named:
            which = f"none is of {name}" if name else "give the boxes of one"
            raise FO1Error(f"The Label Studio file holds {len(tasks)} tasks: {which}.")
        tasks = named
    marked = [*(tasks[0].get("annotations") or []), *(tasks[0].get("predictions") or [])]
    results = next(
        (
            entry["result"]
            for entry in marked
            if isinstance(entry, dict) and isinstance(entry.get("result"), list)
        ),
        [],
    )
    read = [
        (_label_studio_box(result, image_size), _label_studio_label(result)) for result in results
    ]
    kept = [(box, label) for box, label in read if box is not None]
    return BoxesRead([box for box, _ in kept], labels=_labels([label for _, label in kept]))


def _label_studio_label(result: object) -> object:
    """The first label of a Label Studio result (`value.rectanglelabels`, …), None without."""
    value = result.get("value") if isinstance(result, dict) else None
    names = value.get(_labels_key(value)) if isinstance(value, dict) else None
    return names[0] if isinstance(names, list) and names else None


def _labels_key(value: dict) -> str | None:
    """The key of a Label Studio value's labels (`rectanglelabels`, `polygonlabels`, …)."""
    return next((key for key in value if str(key).endswith("labels")), None)


def _stored_as(data: dict, name: str) -> bool:
    """Whether a task's `data` names the image `name`, as uploaded to Label Studio or not."""
    return any(is_named(value, name) for value in data.values() if isinstance(value, str))


def _label_studio_box(result: object, image_size: tuple[int, int] | None) -> object:
    """A Label Studio result's box in pixels of the `image_size` image (else of the size the
    result records), None for a result that marks no region."""
    value = result.get("value") if isinstance(result, dict) else None
    if not isinstance(value, dict) or not ({"x", "points"} & value.keys()):
        return None
    width, height = image_size or (result.get("original_width"), result.get("original_height"))
    kind = str(result.get("type") or "result").removesuffix("labels")  # rectanglelabels …
    if not (is_number(width) and is_number(height)):
        return NotABox(f"is a Label Studio {kind} with no image size recorded")
    sides = [value.get(key) for key in ("x", "y", "width", "height")]
    points = value.get("points")
    if all(is_number(side) for side in sides):
        if value.get("rotation") not in (None, 0):
            return NotABox(f"is a rotated Label Studio {kind}: FO1 reads upright boxes")
        x, y, wide, high = sides
        corners = [x, y, x + wide, y + high]
    elif isinstance(points, list) and points and all(_is_point(point) for point in points):
        xs, ys = [x for x, _ in points], [y for _, y in points]
        corners = [min(xs), min(ys), max(xs), max(ys)]
    elif kind == "rectangle":
        return NotABox(f"is a Label Studio {kind} whose x, y, width and height are not all numbers")
    else:
        return NotABox(
            f"is a Label Studio {kind}, which has no area: FO1 reads rectangles, polygons"
        )
    scale = (width / 100, height / 100) * 2
    return [round(corner * factor, 3) for corner, factor in zip(corners, scale, strict=True)]


def _is_point(point: object) -> bool:
    return isinstance(point, list) and len(point) == 2 and all(is_number(v) for v in point)


def xml_boxes(
    text: str, image_name: str | None = None, image_size: tuple[int, int] | None = None
) -> BoxesRead:
    """The boxes of an annotation in XML: a Pascal VOC annotation (`voc_boxes`) or a CVAT export
    (`cvat_boxes`). `image_name` and `image_size` as for `unwrap_boxes`."""
    try:
        # Python's expat (2.4.1 on) refuses entity expansion bombs; the text is size-capped.
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        raise FO1Error(
            f"Not a Pascal VOC or CVAT annotation: its XML is broken ({error})."
        ) from None
    if root.tag == "annotation":
        return voc_boxes(root, image_size)
    if root.tag == "annotations":
        return cvat_boxes(root, image_name, image_size)
    raise FO1Error(f"Not a Pascal VOC or CVAT annotation: its XML is <{root.tag}>.")


def voc_boxes(root: ElementTree.Element, image_size: tuple[int, int] | None = None) -> BoxesRead:
    """The boxes of a Pascal VOC annotation (LabelImg's and many labelling tools' XML, one file
    an image): each `object`'s `bndbox` corners, in the file's order, scaled to `image_size`
    where the file records its image at another size. A corner that is not a number is passed
    on as text, for the caller's checks to name."""
    corners = ("xmin", "ymin", "xmax", "ymax")
    objects = [item for item in root.iterfind("object") if item.find("bndbox") is not None]
    boxes = [[_number(item.findtext(f"bndbox/{corner}")) for corner in corners] for item in objects]
    labels = [item.findtext("name") for item in objects]
    size = (_number(root.findtext("size/width")), _number(root.findtext("size/height")))
    return _fitted(boxes, size, image_size, "VOC annotation", labels)


CVAT_AREAS = "boxes, polygons, ellipses, masks"
"""The CVAT shapes that mark an area, as a message names them."""


def cvat_boxes(
    root: ElementTree.Element,
    image_name: str | None,
    image_size: tuple[int, int] | None = None,
) -> BoxesRead:
    """The boxes of a CVAT export ("CVAT for images" XML): those of its one image, or of the
    image named `image_name` (folders aside) where it holds several, in the file's order: each
    box, and the extent of each polygon, ellipse and mask; scaled to `image_size` where the file
    records its image at another size. A tag marks no region and is left out; a shape with no
    area, or a turned box, is passed on as `NotABox`."""
    images = root.findall("image")
    if not images and root.find("track") is not None:
        raise FO1Error(
            "The CVAT file is a video's (its boxes are tracks over frames): export the task "
            'as "CVAT for images" to load the boxes of one image.'
        )
    if len(images) > 1:
        names = {str(index): image.get("name", "") for index, image in enumerate(images)}
        wanted = _images_named(names, image_name, "The CVAT file holds")
        images = [image for index, image in enumerate(images) if str(index) in wanted]
    shapes = [
        shape
        for image in images
        for shape in image
        if shape.tag != "tag" and shape.get("outside") != "1"
    ]
    first = images[0] if images else ElementTree.Element("image")  # of no size, then
    size = (_number(first.get("width")), _number(first.get("height")))
    boxes = [_cvat_box(shape) for shape in shapes]
    labels = [shape.get("label") for shape in shapes]
    return _fitted(boxes, size, image_size, "CVAT file", labels)


_CVAT_CORNERS = {
    "box": (("xtl", "ytl", "xbr", "ybr"), lambda x1, y1, x2, y2: [x1, y1, x2, y2]),
    "ellipse": (("cx", "cy", "rx", "ry"), lambda x, y, rx, ry: [x - rx, y - ry, x + rx, y + ry]),
    "mask": (("left", "top", "width", "height"), lambda x, y, w, h: [x, y, x + w, y + h]),
}
"""The CVAT shapes given by four numbers: their attributes, and the corners they make."""


def _cvat_box(shape: ElementTree.Element) -> object:
    numbers = {key: _number(value) for key, value in shape.attrib.items()}
    if shape.tag in ("box", "ellipse") and numbers.get("rotation") not in (None, 0):
        return NotABox(f"is a turned CVAT {shape.tag}: FO1 reads upright boxes")
    if shape.tag in _CVAT_CORNERS:
        keys, corners = _CVAT_CORNERS[shape.tag]
        values = [numbers.get(key) for key in keys]
        # Values that are not numbers are passed on, for the caller's checks to name.
        return corners(*values) if all(is_number(value) for value in values) else values
    if shape.tag == "polygon":
        points = [pair.split(",") for pair in shape.get("points", "").split(";")]
        if not all(len(pair) == 2 for pair in points):
            return NotABox('is a CVAT polygon whose points are not "x,y;x,y;…"')
        xs, ys = [_number(x) for x, _ in points], [_number(y) for _, y in points]
        if not all(isinstance(value, float) and math.isfinite(value) for value in (*xs, *ys)):
            return NotABox('is a CVAT polygon whose points are not "x,y;x,y;…" numbers')
        return [min(xs), min(ys), max(xs), max(ys)]
    why = ", which has no area" if shape.tag in ("points", "polyline") else ""
    return NotABox(f"is a CVAT {shape.tag}{why}: FO1 reads {CVAT_AREAS}")


def _number(text: str | None) -> float | str:
    text = (text or "").strip()
    try:
        return float(text)
    except ValueError:
        return text


MAX_RECORDED_SIDE = 2**31
"""A recorded image side from here on is no size (a hand-written file's): not scaled by."""


def _fitted(
    boxes: list,
    recorded: tuple[object, object],
    image_size: tuple[int, int] | None,
    kind: str,
    labels: list[object],
) -> BoxesRead:
    """`boxes`, drawn on an image of the `recorded` size, on the user's `image_size` image, with
    their `labels`. A recorded size that is missing or no size (tools write 0 where they did not
    know it) is not taken as one: the boxes are read as pixels of the user's image."""
    known = all(is_number(side) and 0 < side < MAX_RECORDED_SIDE for side in recorded)
    if image_size is None or not known or tuple(recorded) == tuple(image_size):
        return BoxesRead(boxes, labels=_labels(labels))
    (drawn_width, drawn_height), (width, height) = recorded, image_size
    drawn = f"{drawn_width:g}×{drawn_height:g}"
    # The same shape within a pixel's rounding, whichever side a resize rounded.
    wide, high = drawn_width * height / drawn_height, drawn_height * width / drawn_width
    if min(abs(width - wide), abs(height - high)) > 1:
        raise FO1Error(
            f"The {kind}'s boxes were drawn on a {drawn} image, and this one is {width}×{height}, "
            "another shape (cropped or turned?): they would land in the wrong places. Upload the "
            "image they were drawn on."
        )
    scale = (width / drawn_width, height / drawn_height) * 2
    how = f"scaled from the {drawn} image the {kind} records to this {width}×{height} one"
    return BoxesRead([_scaled(box, scale) for box in boxes], how, _labels(labels))


MAX_LABEL_CHARACTERS = 40
"""A box's label as a status shows it, cut: a hand-written file's may be a paragraph."""


def _labels(labels: list[object]) -> tuple[str, ...]:
    """Each box's label as text ("" for none), or none at all where no box has one."""
    texts = tuple(
        " ".join(label.split())[:MAX_LABEL_CHARACTERS] if isinstance(label, str) else ""
        for label in labels
    )
    return texts if any(texts) else ()


def _scaled(box: object, scale: tuple[float, ...]) -> object:
    """`box` scaled by `scale` where it is four numbers; anything else as it is, to be named."""
    if not (isinstance(box, list) and len(box) == 4 and all(is_number(value) for value in box)):
        return box
    try:
        return [round(value * factor, 3) for value, factor in zip(box, scale, strict=True)]
    except OverflowError:  # an integer too large for a float, which the caller names
        return box
