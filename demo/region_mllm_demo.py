# Copyright (c) cllip_mm contributors. All rights reserved.
"""Ask a trained region-aware LLaVA one question and draw the answer.

    python demo/region_mllm_demo.py work_dirs/region_mllm/cloc_region/hf IMAGE \\
        'where is the red circle?' --out answer.png [--gt-box X1 Y1 X2 Y2]
    python demo/region_mllm_demo.py HF_DIR IMAGE 'what is in <box>?' --boxes 10 20 60 80

``HF_DIR`` is a model saved by ``tools/mllm/train_eval_region_mllm.py``
(``WORK_DIR/<variant>/hf``); ``--boxes`` fill the question's ``<box>`` marks in order
(xyxy pixels, four numbers per box). The picture shows the question's boxes in blue, the
boxes of the answer in red, the optional ground truth in green, and the question and the
answer under the image; the answer is also printed.
"""
import argparse
import os.path as osp
import sys

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from cllip_mm.mllm.inference import RegionMLLM  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('model', help='a saved region MLLM directory (WORK_DIR/<variant>/hf)')
    parser.add_argument('image')
    parser.add_argument('question', help="e.g. 'where is the red circle?' or "
                        "'what is in <box>?'")
    parser.add_argument('--boxes', type=float, nargs='*', default=[],
                        help='xyxy pixels, 4 numbers per <box> of the question')
    parser.add_argument('--gt-box', type=float, nargs=4, default=None,
                        help='a ground-truth box to draw (xyxy pixels)')
    parser.add_argument('--out', default='region_mllm_answer.png')
    parser.add_argument('--scale', type=int, default=4, help='upscale small images for display')
    args = parser.parse_args(argv)
    if len(args.boxes) % 4:
        parser.error(f'--boxes takes 4 numbers per box, got {len(args.boxes)}')
    return args


def draw(image: np.ndarray, question: str, answer, boxes, gt_box, scale: int) -> np.ndarray:
    """The image (BGR) upscaled by ``scale`` with the boxes and two lines of text below."""
    canvas = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)

    def rect(box, colour):
        x1, y1, x2, y2 = (int(round(v * scale)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)

    for box in boxes:
        rect(box, (255, 128, 0))
    if gt_box is not None:
        rect(gt_box, (0, 200, 0))
    for box in answer.boxes:
        rect(box, (0, 0, 255))
    width = canvas.shape[1]
    footer = np.full((56, width, 3), 255, np.uint8)
    for i, line in enumerate((f'Q: {question}', f'A: {answer.text}')):
        cv2.putText(footer, line, (6, 22 + 26 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.concatenate([canvas, footer], axis=0)


def main(argv=None) -> int:
    args = parse_args(argv)
    image = cv2.imread(args.image)
    if image is None:
        raise FileNotFoundError(f'cannot read image {args.image!r}')
    boxes = [args.boxes[i:i + 4] for i in range(0, len(args.boxes), 4)]
    mllm = RegionMLLM.from_pretrained(args.model)
    answer = mllm.ask(image, args.question, boxes=boxes)
    print(f'Q: {answer.question}\nA: {answer.text}\nboxes (pixels): {answer.boxes}')
    cv2.imwrite(args.out, draw(image, args.question, answer, boxes, args.gt_box, args.scale))
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
