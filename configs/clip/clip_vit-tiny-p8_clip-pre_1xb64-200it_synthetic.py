# The control of configs/cloc/cloc_vit-tiny-p8_clip-pre_1xb64-200it_synthetic.py: the demo
# CLIP checkpoint continues for the same 200 iterations with the CLIP loss alone.
_base_ = ['../cloc/cloc_vit-tiny-p8_clip-pre_1xb64-200it_synthetic.py']

model = dict(
    prompter=None,
    grounding_head=None,
    region_loss=None,
    grounding_loss=None,
    region_embed_mode='crop')
val_evaluator = [dict(type='RegionClassificationMetric'), dict(type='ImageTextRetrievalMetric')]
test_evaluator = val_evaluator
