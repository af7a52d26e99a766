# The CLIP baseline of the CLOC demo: the same encoders, data and schedule with the
# region terms off; regions are embedded by crop-and-encode (RegionCLIP's protocol).
_base_ = ['../cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py']

model = dict(
    prompter=None,
    grounding_head=None,
    region_loss=None,
    grounding_loss=None,
    region_embed_mode='crop')
# No grounding head, so no grounding metric.
val_evaluator = [dict(type='RegionClassificationMetric'), dict(type='ImageTextRetrievalMetric')]
test_evaluator = val_evaluator
