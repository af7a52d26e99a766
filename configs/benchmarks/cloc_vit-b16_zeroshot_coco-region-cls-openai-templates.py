# [ours] coco_region_cls with class names in the 80 OpenAI ImageNet templates (CLIP's
# ensemble: each name in every template, embeddings averaged) instead of the paper's raw
# names (cloc_vit-b16_zeroshot_coco-region-cls.py follows the paper). The same as
#   python tools/benchmark.py configs/cloc/cloc_vit-b16_128xb256-400k_region-text.py \
#     CHECKPOINT --tasks coco_region_cls --templates openai
_base_ = ['./cloc_vit-b16_zeroshot_coco-region-cls.py']
model = dict(test_cfg=dict(prompt_templates='openai'))
