# The paper's Table 2 ablation "without text filtering" (row 10) of
# ./cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py: near-duplicate texts stay negatives
# (identical strings are still one text).
_base_ = ['./cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py']
model = dict(region_loss=dict(text_filter_threshold=None))
