# The CPU demo CLIP baseline on the synthetic_region_cls task (crop-and-encode).
_base_ = ['./cloc_vit-tiny-p8_zeroshot_synthetic-region-cls.py']
model = dict(
    prompter=None, grounding_head=None, region_loss=None, grounding_loss=None,
    region_embed_mode='crop')
