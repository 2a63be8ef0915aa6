from __future__ import annotations

import json
import shutil

import huggingface_hub.constants
import numpy as np
import pytest
import supervision as sv
import torch
from PIL import Image

from detect_tools import base, registry
from detect_tools.__main__ import detections_to_json, main
from detect_tools.base import (
    MAX_PROMPT_CLASSES,
    MAX_PROPOSALS,
    ProposalOptions,
    ProposerError,
    split_prompt,
)
from detect_tools.memory import MEMORY_TO_SPARE, safetensors_numel
from fo1_core.box_files import unwrap_boxes
from fo1_core.inputs import check_boxes
from ui.proposing import Proposing


def test_every_proposer_is_listed_with_a_label():
    names = registry.available()
    expected = {"florence2", "florence2-od", "omdet-turbo", "grounding-dino", "owlv2", "sam3"}
    assert expected | {"owlv2-objects", "owlv2-like", "sam3-like", "offline"} <= set(names)
    assert "coarse" in names["offline"].lower(), "the UI list must say the offline one is coarse"


def test_get_shares_one_instance_per_setting(florence2_checkpoint):
    first = registry.get("florence2", florence2_checkpoint, "cpu")
    assert registry.get("florence2", florence2_checkpoint, "cpu") is first
    assert registry.get("offline") is registry.get("offline")


@pytest.mark.parametrize(
    ("name", "checkpoint", "message"),
    [
        ("yolo", None, "choose one of"),  # unknown name lists the real ones
        ("offline", "some/model", "uses no model"),  # a checkpoint for the weight-free one
    ],
)
def test_get_rejects_bad_requests(name, checkpoint, message):
    with pytest.raises(ProposerError, match=message):
        registry.get(name, checkpoint)


def test_cli_writes_json(image_file, tmp_path):
    out = tmp_path / "out.json"
    assert main(["--proposer", "offline", "--image", str(image_file), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["proposer"] == "offline" and result["count"] == len(result["proposals"])
    assert result["count"] <= MAX_PROPOSALS
    boxes = [p["box"] for p in result["proposals"]]
    assert [40, 30, 120, 90] in [[round(v) for v in box] for box in boxes]


@pytest.mark.parametrize("off", ["0", "none", "off"])
def test_cli_nms_is_turned_off_as_its_message_says(image_file, tmp_path, off):
    outputs = {}
    for nms_iou in (off, "0.05"):
        out = tmp_path / f"{nms_iou}.json"
        argv = ["--proposer", "offline", "--image", str(image_file), "--nms-iou", nms_iou]
        assert main([*argv, "--json", str(out)]) == 0
        outputs[nms_iou] = json.loads(out.read_text())["count"]
    assert outputs[off] > outputs["0.05"]  # overlapping proposals kept without NMS


def test_cli_boxes_given_to_fo1_are_the_boxes_proposed():
    """A 1 px proposal near half pixels: written to two decimals, [3.496, 4.504] would read back
    as [3.5, 4.5], which rounds (half to even) to no whole pixel and is refused."""
    proposed = np.array([[3.496, 10, 4.504, 50]], np.float32)
    document = detections_to_json(sv.Detections(proposed, confidence=np.ones(1)), "offline")
    boxes, _ = check_boxes(unwrap_boxes(json.loads(json.dumps(document))).boxes, (120, 80))
    assert boxes.astype(np.float32).tolist() == proposed.tolist()


def test_cli_says_a_text_it_does_not_use(image_file, caplog, capsys):
    assert main(["--proposer", "offline", "--image", str(image_file), "--text", "cup"]) == 0
    assert "--text is not used: offline finds boxes without one." in caplog.text


def test_cli_never_writes_over_its_image(image_file, capsys):
    before, path = image_file.read_bytes(), str(image_file)
    assert main(["--proposer", "offline", "--image", path, "--json", path]) == 2
    assert "is the --image file" in capsys.readouterr().err
    assert image_file.read_bytes() == before


def test_cli_boxes_are_in_the_frame_the_photo_is_shown_in(tmp_path):
    # A phone photo stored landscape with "rotate 90° clockwise" in its EXIF: shown portrait.
    pixels = np.full((120, 160, 3), 200, dtype=np.uint8)
    pixels[30:90, 40:120] = (20, 40, 200)
    stored = Image.fromarray(pixels)
    exif = stored.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)
    out = tmp_path / "out.json"
    assert main(["--proposer", "offline", "--image", str(path), "--json", str(out)]) == 0
    boxes = [[round(v) for v in p["box"]] for p in json.loads(out.read_text())["proposals"]]
    # The stored block (x 40–120, y 30–90) turned with the picture into a 120×160 frame.
    assert any(
        abs(x1 - 30) <= 2 and abs(y1 - 40) <= 2 and abs(x2 - 90) <= 2 and abs(y2 - 120) <= 2
        for x1, y1, x2, y2 in boxes
    ), boxes


def test_cli_with_a_model_checkpoint_and_masks(image_file, sam3_checkpoint, capsys):
    argv = ["--proposer", "sam3", "--image", str(image_file), "--text", "cup, person"]
    argv += ["--checkpoint", str(sam3_checkpoint), "--device", "cpu", "--max-count", "3"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 < result["count"] <= 3
    assert all("mask_area" in p and p["label"] in {"cup", "person"} for p in result["proposals"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--proposer", "nope"], "Unknown proposer"),
        (["--proposer", "sam3"], "needs a text prompt"),
        (["--proposer", "offline", "--max-count", "500"], "--max-count: Maximum count must be"),
        (["--proposer", "offline", "--nms-iou", "1.5"], "--nms-iou: NMS IoU must be in (0, 1]"),
        (["--proposer", "offline", "--nms-iou", "abc"], "--nms-iou: expected a number in (0, 1]"),
        (["--proposer", "offline", "--threshold", "x"], "--threshold: invalid float value: 'x'"),
        (["--proposer", "offline", "--image", "/no/such.png"], "The image /no/such.png is not"),
        (
            ["--proposer", "offline", "--image", "https://example.com/cat.jpg"],
            "'https://example.com/cat.jpg' is a URL; this tool reads local files only",
        ),
        (["--proposer", "sam3", "--device", "gpu", "--text", "cup"], "Unknown device 'gpu'"),
    ],
)
def test_cli_errors_are_one_clear_line(argv, message, image_file, capsys):
    if "--image" not in argv:
        argv = [*argv, "--image", str(image_file)]
    try:
        code = main(argv)
    except SystemExit as stopped:  # refused by the argument parser, before any proposer loads
        code = stopped.code
    assert code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((4, 40), "The image is 4×40 px; each side needs at least 8 px."),
        ((1600, 10), "The image is 1600×10 px, an aspect ratio above 150:1"),
        (None, "notes.png: The file is not an image this app can read"),
    ],
)
def test_the_command_line_refuses_the_images_fo1_refuses(size, message, tmp_path, capsys):
    image = tmp_path / "notes.png"
    if size:
        Image.new("RGB", size, "white").save(image)
    else:
        image.write_text("shopping list")
    assert main(["--proposer", "offline", "--image", str(image)]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


@pytest.mark.parametrize(
    ("out", "problem"),
    [("/no/such/folder/out.json", "the folder '/no/such/folder' does not exist"), (".", "folder")],
)
def test_a_json_that_cannot_be_written_is_refused_before_the_proposer_loads(
    out, problem, image_file, capsys
):
    argv = ["--proposer", "florence2", "--checkpoint", "/no/such/model"]
    with pytest.raises(SystemExit) as exit:
        main([*argv, "--image", str(image_file), "--json", out])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert f"argument --json: could not write '{out}': " in error and problem in error
    assert "model" not in error  # nothing tried to load it


@pytest.mark.parametrize(
    ("name", "fixture", "text"),
    [
        ("florence2", "florence2_checkpoint", None),
        ("omdet-turbo", "omdet_turbo_checkpoint", "cup"),
        ("grounding-dino", "grounding_dino_checkpoint", "cup"),
        ("owlv2", "owlv2_checkpoint", "cup"),
        ("owlv2-objects", "owlv2_checkpoint", None),
        ("sam3", "sam3_checkpoint", "cup"),
    ],
)
def test_model_proposers_run_in_bfloat16(name, fixture, text, request, photo, contract):
    # bfloat16 is the GPU default; here it runs on the CPU so the dtype path is always tested.
    proposer = registry.get(name, request.getfixturevalue(fixture), "cpu", torch.bfloat16)
    options = ProposalOptions(threshold=0.0)
    proposals = proposer.propose(photo, text, options)
    contract(proposals, photo, options, threshold=0.0)
    assert len(proposals) > 0 and proposals.xyxy.dtype == np.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def _half_written(checkpoint, tmp_path):
    """A copy of `checkpoint` whose weights file stops halfway, as an interrupted download."""
    copy = tmp_path / "half"
    shutil.copytree(checkpoint, copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return copy


@pytest.mark.parametrize(
    ("name", "text", "folder"),
    [
        # another proposer's checkpoint
        ("florence2", None, lambda request, tmp: request.getfixturevalue("sam3_checkpoint")),
        ("sam3", "cup", lambda request, tmp: request.getfixturevalue("omdet_turbo_checkpoint")),
        # an interrupted download
        (
            "omdet-turbo",
            "cup",
            lambda request, tmp: _half_written(
                request.getfixturevalue("omdet_turbo_checkpoint"), tmp
            ),
        ),
    ],
)
def test_a_wrong_or_damaged_checkpoint_is_one_clear_line(
    name, text, folder, request, tmp_path, image_file, capsys
):
    argv = ["--proposer", name, "--image", str(image_file), "--device", "cpu"]
    argv += ["--checkpoint", str(folder(request, tmp_path))] + (["--text", text] if text else [])
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert any(says in error for says in ("model of type", "is not a", "could not be loaded"))
    assert "Traceback" not in error


def test_asking_for_cuda_without_a_gpu_says_use_cpu(florence2_checkpoint):
    with pytest.raises(ProposerError, match="--device cpu"):
        registry.get("florence2", florence2_checkpoint, "cuda")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("red cup, person", ["red cup", "person"]),
        ("  red   cup ;person\ndog,", ["red cup", "person", "dog"]),  # mixed separators, spaces
        ("cup, cup", ["cup"]),  # repeats dropped, order kept
    ],
)
def test_split_prompt(text, expected):
    assert split_prompt(text) == expected


def test_split_prompt_refuses_a_pasted_list():
    with pytest.raises(ProposerError, match="At most"):
        split_prompt(", ".join(f"thing{i}" for i in range(MAX_PROMPT_CLASSES + 1)))


def test_the_app_proposes_with_the_folder_it_was_given(florence2_checkpoint, photo):
    """`app.py --proposer-checkpoint florence2=FOLDER`: a Space without the hub still proposes."""
    proposals = Proposing("cpu", {"florence2": str(florence2_checkpoint)}).propose(
        photo, "florence2", None, None, 5
    )
    assert 0 < len(proposals.boxes) <= 5
    # Florence-2's detection proposer loads the same model: the one folder serves it too.
    assert registry.with_shared_models({"florence2": "/models/f2"}) == {
        "florence2": "/models/f2",
        "florence2-od": "/models/f2",
    }
    missing = Proposing("cpu", {"florence2": "/nowhere/florence2"})
    with pytest.raises(ProposerError, match="app.py --proposer-checkpoint florence2=FOLDER"):
        missing.propose(photo, "florence2", None, None, 5)


def test_a_visitor_is_offered_the_proposers_that_can_run_here(tmp_path, monkeypatch):
    """Hub offline: a model proposer is offered once a folder is given or its weights are cached,
    and Florence-2's region proposals are preselected then, else OWLv2's objectness proposals,
    the offline one otherwise."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    bare = Proposing("cpu")
    assert [name for _, name in bare.choices()] == ["offline"]
    assert bare.default() == "offline"
    # The operator's own pick stays offered: its Propose then says what it lacks.
    assert [name for _, name in bare.choices("sam3")] == ["sam3", "offline"]
    assert bare.default("sam3") == "sam3"

    given = Proposing("cpu", {"florence2": "/models/florence2"})
    assert [name for _, name in given.choices()] == ["florence2", "florence2-od", "offline"]
    assert given.default() == "florence2"
    owl = Proposing("cpu", {"owlv2": "/models/owlv2"})
    assert [name for _, name in owl.choices()] == [
        "owlv2",
        "owlv2-objects",
        "owlv2-like",
        "offline",
    ]
    assert owl.default() == "owlv2-objects"
    both = Proposing("cpu", {"owlv2": "/models/owlv2", "florence2": "/models/florence2"})
    assert both.default() == "florence2"

    snapshot = tmp_path / "cache/models--omlab--omdet-turbo-swin-tiny-hf/snapshots/abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs/main").write_text("abc")
    # Its config alone is a download cut short: not offered until its weights are there too.
    assert [name for _, name in Proposing("cpu").choices()] == ["offline"]
    (snapshot / "model.safetensors").write_bytes(b"")
    assert [name for _, name in Proposing("cpu").choices()] == ["omdet-turbo", "offline"]

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    online = Proposing("cpu")
    assert {name for _, name in online.choices()} == set(registry.available())
    assert online.default() == "florence2"


def _free_memory(monkeypatch, checkpoint, spare_bytes: int) -> None:
    """Memory free: a float32 checkpoint's weights, `MEMORY_TO_SPARE` and `spare_bytes`."""
    need = sum(safetensors_numel(file) for file in checkpoint.glob("*.safetensors")) * 4
    monkeypatch.setattr(base, "available_memory", lambda: need + MEMORY_TO_SPARE + spare_bytes)


def test_a_proposer_too_large_for_the_memory_free_is_refused_not_loaded(
    florence2_checkpoint, photo, monkeypatch, tmp_path
):
    """Out of memory, the server process would be killed, every visitor's page with it."""
    folder = shutil.copytree(florence2_checkpoint, tmp_path / "florence2")  # not loaded before
    proposing = Proposing("cpu", {"florence2": str(folder)})
    _free_memory(monkeypatch, folder, -1)
    with pytest.raises(ProposerError, match="not enough memory here to load Florence-2"):
        proposing.propose(photo, "florence2", None, None, 5)
    _free_memory(monkeypatch, folder, 0)  # memory freed since: loads at once
    assert len(proposing.propose(photo, "florence2", None, None, 5).boxes) > 0


def test_the_weights_in_the_hub_cache_are_counted_before_loading(
    omdet_turbo_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--omlab--omdet-turbo-swin-tiny-hf"
    shutil.copytree(omdet_turbo_checkpoint, repo / "snapshots/abc")
    (repo / "refs").mkdir()
    (repo / "refs/main").write_text("abc")
    _free_memory(monkeypatch, omdet_turbo_checkpoint, -1)
    with pytest.raises(ProposerError, match="not enough memory"):
        registry.get("omdet-turbo", device="cpu").load()


def test_a_gated_model_says_how_to_be_let_in(monkeypatch):
    """SAM3's weights are given to accounts that accepted its terms: without a token the load
    said "if this machine cannot reach the hub…", which its operator could not act on."""
    import httpx2
    from huggingface_hub.errors import GatedRepoError

    proposer = registry.get("sam3", device="cpu")
    page = httpx2.Request("GET", f"https://huggingface.co/{proposer.checkpoint}")

    def gated(checkpoint):  # its config, the first file fetched, as transformers tells it
        try:
            raise GatedRepoError("401", response=httpx2.Response(401, request=page))
        except GatedRepoError as error:
            raise OSError(
                f"You are trying to access a gated repo: {proposer.checkpoint}"
            ) from error

    monkeypatch.setattr(base, "_stored_model_type", gated)
    with pytest.raises(ProposerError, match="is gated on the Hugging Face hub.*HF_TOKEN"):
        proposer.load()
