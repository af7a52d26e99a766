# The CLIP baseline of configs/cloc/cloc_vit-l14-336_256xb128-400k_region-text.py: the same towers, data
# and recipe with the region terms off (regions evaluated by crop-and-encode:
# docs/method.md, section 7).
_base_ = ['../cloc/cloc_vit-l14-336_256xb128-400k_region-text.py']
model = dict(
    prompter=None,
    grounding_head=None,
    region_loss=None,
    grounding_loss=None,
    region_embed_mode='crop')
val_evaluator = [dict(type='RegionClassificationMetric'), dict(type='ImageTextRetrievalMetric')]
test_evaluator = val_evaluator
