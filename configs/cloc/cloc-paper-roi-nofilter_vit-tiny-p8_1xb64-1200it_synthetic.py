# A control, not one of the paper's rows: the paper's RoI-alignment ablation
# (./cloc-paper-roi_vit-tiny-p8_1xb64-1200it_synthetic.py) without text filtering
# (identical strings are still one text). It asks whether the 0.9 filter is what keeps the
# RoI control's region top-1 near 1/4 on the demo (docs/region_effect.md, "The paper's recipe
# on the demo").
_base_ = ['./cloc-paper-roi_vit-tiny-p8_1xb64-1200it_synthetic.py']
model = dict(region_loss=dict(text_filter_threshold=None))
