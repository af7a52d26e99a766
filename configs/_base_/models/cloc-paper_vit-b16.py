# The paper's CLOC at ViT-B/16, 224 px (docs/method.md; ../shared spec sections 3-4).
# [paper] stated in the paper (sec. / table named); [paper?] our reading; [ours] ours.
embed_dim = 512
vision_width = 768
# A T5 tokenizer directory (save_pretrained: spiece.model and / or tokenizer.json) [paper: Table A]
tokenizer_path = 'data/tokenizers/t5'

model = dict(
    type='CLOC',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        # CLIP's mean / std on the 0-255 scale; pipelines carry BGR [ours]
        mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        bgr_to_rgb=True,
        pad_size_divisor=16),
    # [paper: App. B.1] image and text towers follow OpenAI CLIP, trained from scratch (sec. 5.1)
    image_encoder=dict(
        type='VisionTransformer',
        img_size=224,  # [paper: Table A] B/16 at 224 px
        patch_size=16,
        width=vision_width,
        layers=12,
        heads=12,
        embed_dim=embed_dim,
        act='gelu',
        drop_path_rate=0.0,  # [paper: Table A] dropout 0
        patch_token_norm='none'),
    text_encoder=dict(
        type='TextTransformer',
        # vocab_size and eot_token_id come from the T5 tokenizer
        context_length=77,  # [paper: Table A] at most 77 tokens
        width=512,
        layers=12,
        heads=8,
        embed_dim=embed_dim,
        act='gelu'),
    # [paper: Table A] T5 tokenizer, lower-cased text, 77 tokens
    tokenizer=dict(type='SentencePieceTokenizer', path=tokenizer_path, context_length=77,
                   lowercase=True),
    # [ours] region phrases (about 2 tokens, Table 1) are tokenized to 32 at most; the causal
    # text tower pools at the end token, so the length changes nothing but time
    phrase_context_length=32,
    clip_loss=dict(type='ClipContrastiveLoss'),  # [paper: eq. 1]
    # [paper: sec. 3.3, App. B.1, Table A] box corners as 2 sine encodings prepended to the ViT
    # tokens (before ln_post / proj), one single-head transformer encoder layer of the ViT's
    # width, its own average pool and projection; [paper?] pool over all tokens, 2 corner
    # tokens; [ours] pre-norm, a LayerNorm before the projection (ClocPrompter's docstring)
    prompter=dict(type='ClocPrompter', width=vision_width, embed_dim=embed_dim, heads=1,
                  corner_tokens=2, pool='all'),
    # [paper: sec. 3.4, eq. 3, Table A] the text embedding as the prompt, a 2-layer GELU MLP on
    # the corners, L2 loss
    grounding_head=dict(type='ClocGroundingHead', embed_dim=embed_dim),
    grounding_loss=None,
    # [paper: sec. 3.4, eq. 2] region-text contrastive loss; texts with cosine > 0.9 leave the
    # denominators; [paper?] eq. 2 writes CLIP's temperature
    region_loss=dict(type='RegionTextContrastiveLoss', share_logit_scale=True,
                     text_filter_threshold=0.9),
    # [paper: eq. 4, Table A] L_clip + lambda (L_region + L_ground), lambda = the fraction of
    # the batch's images with region text
    region_loss_weighting='image_fraction',
    # [paper: App. B.2] region classification with raw class names, no templates
    vocabulary_template='{}')
