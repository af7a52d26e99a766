# CLOC ViT-B/16 at 224 px (docs/method.md, section 3.1): the image and text towers of CLIP ViT-B/16
# (OpenAI / open_clip sizes), a one-layer Prompter and the grounding head.
embed_dim = 512
vision_width = 768
tokenizer_path = 'data/tokenizers/clip'  # a CLIPTokenizer directory (vocab.json, merges.txt, ...)

model = dict(
    type='CLOC',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        # CLIP's mean / std on the 0-255 scale; pipelines carry BGR.
        mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        bgr_to_rgb=True,
        pad_size_divisor=16),
    image_encoder=dict(
        type='VisionTransformer',
        img_size=224,
        patch_size=16,
        width=vision_width,
        layers=12,
        heads=12,
        embed_dim=embed_dim,
        act='gelu',
        patch_token_norm='none'),
    text_encoder=dict(
        type='TextTransformer',
        vocab_size=49408,  # CLIP's BPE vocabulary
        context_length=77,
        width=512,
        layers=12,
        heads=8,
        embed_dim=embed_dim,
        act='gelu'),
    tokenizer=dict(type='HFTokenizer', path=tokenizer_path, context_length=77),
    phrase_context_length=32,
    clip_loss=dict(type='ClipContrastiveLoss'),
    prompter=dict(type='Prompter', width=vision_width, embed_dim=embed_dim, num_layers=1, heads=12),
    grounding_head=dict(type='GroundingHead', embed_dim=embed_dim, width=vision_width),
    region_loss=dict(type='RegionTextContrastiveLoss', loss_weight=1.0),
    grounding_loss=dict(type='GroundingLoss', loss_weight=1.0))
