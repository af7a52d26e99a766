# The paper's CLOC at ViT-L/14, 336 px [paper: Table A, sec. 5]; see ./cloc-paper_vit-b16.py.
_base_ = ['./cloc-paper_vit-b16.py']
embed_dim = 768
vision_width = 1024
model = dict(
    image_encoder=dict(img_size=336, patch_size=14, width=vision_width, layers=24, heads=16,
                       embed_dim=embed_dim),
    data_preprocessor=dict(pad_size_divisor=14),
    text_encoder=dict(width=768, layers=12, heads=12, embed_dim=embed_dim),
    prompter=dict(width=vision_width, embed_dim=embed_dim),
    grounding_head=dict(embed_dim=embed_dim))
