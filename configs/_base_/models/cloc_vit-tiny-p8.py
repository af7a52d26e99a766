# A CPU-sized CLOC: ViT with 4 blocks of width 128, patch 8 at 96 px (a 12x12 grid).
embed_dim = 128
tokenizer_path = 'data/cloc_demo/tokenizer'

model = dict(
    type='CLOC',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        # CLIP's mean / std on the 0-255 scale; pipelines carry BGR.
        mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        bgr_to_rgb=True,
        pad_size_divisor=8),
    image_encoder=dict(
        type='VisionTransformer',
        img_size=96,
        patch_size=8,
        width=128,
        layers=4,
        heads=4,
        embed_dim=embed_dim,
        patch_token_norm='none'),
    text_encoder=dict(
        type='TextTransformer',
        context_length=40,
        width=128,
        layers=3,
        heads=4,
        embed_dim=embed_dim),
    tokenizer=dict(type='HFTokenizer', path=tokenizer_path, context_length=40),
    phrase_context_length=8,
    clip_loss=dict(type='ClipContrastiveLoss'),
    # The prompt token's content is the whole 4x4 RoIAlign grid of the box on the
    # encoder's output tokens ('final', roi_pool='flatten': keeps the object's shape);
    # the layer attends to the output tokens with a sine position encoding
    # (docs/region_effect.md compares the alternatives).
    prompter=dict(
        type='Prompter', width=128, embed_dim=embed_dim, num_layers=1, heads=4,
        roi_sources=('final', ), context_sources=('final', ), roi_pool='flatten',
        context_pos_encoding=True),
    # Grounding: the phrase picks the token holding the box centre (a cross-entropy over
    # tokens), the box is read at that token, the region branch re-checks the 5 best tokens'
    # boxes and one RoI step refines the kept one (docs/method.md, section 3.4;
    # docs/region_effect.md, "Grounding").
    grounding_head=dict(type='GroundingHead', embed_dim=embed_dim, width=128, box_mode='token',
                        rescore_topk=5, refine=True),
    region_loss=dict(type='RegionTextContrastiveLoss', loss_weight=1.0),
    grounding_loss=dict(type='GroundingLoss', loss_weight=1.0, loss_token=0.5))
