# The CLIP baseline of the paper's CLOC (../cloc/cloc-paper_vit-l14-336_256xb128-439087it_region-text.py):
# the same towers, images, tokenizer and recipe with the region terms off [paper: sec. 5.1,
# Table A: "the CLIP baseline uses the same recipe"]. Regions are evaluated by crop-and-encode
# [ours: the paper reports no CLIP crop baseline].
_base_ = ['../cloc/cloc-paper_vit-l14-336_256xb128-439087it_region-text.py']
model = dict(
    prompter=None,
    grounding_head=None,
    region_loss=None,
    region_loss_weighting='fixed',
    region_embed_mode='crop')
val_evaluator = [dict(type='RegionClassificationMetric'), dict(type='ImageTextRetrievalMetric')]
test_evaluator = val_evaluator
