# Tiny CPU variants of the downstream configs: the CLOC ViT-tiny/8 encoders of
# configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py on the synthetic demo set,
# converted to mmdet formats by tools/dataset_converters/synthetic_to_coco.py.
# Paths come from the environment when set (tests use temporary directories):
#   CLOC_SYNTHETIC_ROOT  the synthetic set (with tokenizer/ and mmdet/), trailing '/'
#   CLOC_TINY_CHECKPOINT the tiny CLOC checkpoint converted by cllip_to_mmdet.py
synthetic_root = '{{$CLOC_SYNTHETIC_ROOT:data/cloc_demo/}}'
tiny_checkpoint = '{{$CLOC_TINY_CHECKPOINT:work_dirs/cloc_vit-tiny-p8_1xb64-1200it_synthetic/cloc_mmdet.pth}}'

# The 32 phrases of the synthetic set and its OV split (synthetic_to_coco.py's default:
# every colour and every shape is novel once, so novel classes are new compositions).
synthetic_classes = (
    'black circle', 'black square', 'black star', 'black triangle', 'blue circle',
    'blue square', 'blue star', 'blue triangle', 'green circle', 'green square',
    'green star', 'green triangle', 'orange circle', 'orange square', 'orange star',
    'orange triangle', 'purple circle', 'purple square', 'purple star', 'purple triangle',
    'red circle', 'red square', 'red star', 'red triangle', 'white circle', 'white square',
    'white star', 'white triangle', 'yellow circle', 'yellow square', 'yellow star',
    'yellow triangle')
synthetic_novel_classes = ('black circle', 'blue square', 'green triangle', 'orange triangle',
                           'purple star', 'red star', 'white square', 'yellow circle')
synthetic_base_classes = tuple(c for c in synthetic_classes if c not in synthetic_novel_classes)

tiny_data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[122.7709383, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    bgr_to_rgb=True,
    pad_size_divisor=32)

# configs/_base_/models/cloc_vit-tiny-p8.py's encoders.
tiny_vit = dict(
    type='ClocViT',
    img_size=96,
    patch_size=8,
    width=128,
    layers=4,
    heads=4,
    embed_dim=128,
    patch_token_norm='none',
    out_strides=(8, 16, 32),
    init_cfg=dict(type='Pretrained', checkpoint=tiny_checkpoint, prefix='backbone.'))
tiny_text_model = dict(
    type='ClocTextModel',
    tokenizer_path=synthetic_root + 'tokenizer',
    text_encoder=dict(type='TextTransformer', context_length=40, width=128, layers=3, heads=4,
                      embed_dim=128),
    max_tokens=256,
    pad_to_max=False,
    use_sub_sentence_represent=True,
    special_tokens_list=['.', '?'],
    init_cfg=dict(type='Pretrained', checkpoint=tiny_checkpoint, prefix='language_model.'))

# A Grounding DINO with 1 encoder and 2 decoder layers and 30 queries (merged into mmdet's).
# Its width stays 256: mmdet's Grounding DINO encoder hard-codes 256 for the text
# position encoding.
tiny_grounding_dino = dict(
    num_queries=30,
    data_preprocessor=tiny_data_preprocessor,
    backbone=dict(_delete_=True, **tiny_vit),
    neck=dict(in_channels=[128, 128, 128]),
    language_model=dict(_delete_=True, **tiny_text_model),
    encoder=dict(
        num_layers=1,
        num_cp=0,
        layer_cfg=dict(ffn_cfg=dict(feedforward_channels=256)),
        text_layer_cfg=dict(ffn_cfg=dict(feedforward_channels=256)),
        fusion_layer_cfg=dict(embed_dim=256)),
    decoder=dict(num_layers=2, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=256))),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=10)),
    test_cfg=dict(max_per_img=30))

tiny_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='ClocLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        layer_decay_rate=0.8,
        custom_keys={
            'backbone.vit.positional_embedding': dict(decay_mult=0.),
            'backbone.vit.class_embedding': dict(decay_mult=0.),
            'language_model': dict(lr_mult=0.1),
        }))

# A few iterations, validated at the end (tests override max_iters).
tiny_train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, val_interval=4)
tiny_param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=4)]
tiny_default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4, max_keep_ckpts=1,
                    save_best=None),
    visualization=dict(type='GroundingVisualizationHook'))
tiny_log_processor = dict(type='LogProcessor', window_size=1, by_epoch=False)
