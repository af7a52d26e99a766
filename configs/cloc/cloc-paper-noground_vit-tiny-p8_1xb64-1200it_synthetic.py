# The paper's Table 2 ablation "without the grounding loss" of
# ./cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py: no grounding head, so no grounding metric.
_base_ = ['./cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py']
model = dict(grounding_head=None)
val_evaluator = [dict(type='RegionClassificationMetric'), dict(type='ImageTextRetrievalMetric')]
test_evaluator = val_evaluator
