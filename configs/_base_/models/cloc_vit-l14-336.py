# CLOC ViT-L/14 at 336 px (docs/method.md, section 3.1): CLIP ViT-L/14 towers, a one-layer
# Prompter and the grounding head.
_base_ = ['./cloc_vit-b16.py']
embed_dim = 768
vision_width = 1024

model = dict(
    data_preprocessor=dict(pad_size_divisor=14),
    image_encoder=dict(
        img_size=336, patch_size=14, width=vision_width, layers=24, heads=16, embed_dim=embed_dim,
        grad_checkpointing=True),
    text_encoder=dict(width=768, layers=12, heads=12, embed_dim=embed_dim),
    prompter=dict(width=vision_width, embed_dim=embed_dim, heads=16),
    grounding_head=dict(embed_dim=embed_dim, width=vision_width))
