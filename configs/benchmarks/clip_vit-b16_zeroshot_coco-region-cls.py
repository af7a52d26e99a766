# The CLIP ViT-B/16 baseline on the coco_region_cls benchmark: regions by crop-and-encode
# (RegionCLIP's protocol; crop context: model.crop_scale, 1.0 = the tight box).
_base_ = ['./cloc_vit-b16_zeroshot_coco-region-cls.py']
model = dict(
    prompter=None, grounding_head=None, region_loss=None, grounding_loss=None,
    region_embed_mode='crop', crop_scale=1.0)
