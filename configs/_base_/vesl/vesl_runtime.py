# VESL defaults shared by configs/vesl/: filters, batching, device and outputs.
# Region filters, applied in this order (drop counts per `name` in report.json).
filters = [
    dict(type='ScoreThreshold', score_thr=0.1),            # the paper's confidence 0.1
    dict(type='MinBoxSize', min_size=8, min_rel_area=0.0),  # pixels of the input image
    dict(type='PerPhraseNMS', iou_thr=0.5),                 # duplicates of one phrase
    dict(type='CrossPhraseNMS', iou_thr=0.9),               # one box, several phrases
    dict(type='MaxRegions', max_per_image=50, max_per_phrase=10),
]
batch_size = 8          # images per model call
shard_size = 1000       # images per output shard (folder / file-list inputs)
device = 'auto'         # 'cpu', 'cuda' (cuda:LOCAL_RANK per process), 'cuda:1', 'auto'
dtype = 'float32'       # 'bfloat16' on GPUs
output = dict(
    odvg=True,           # shards/NAME.odvg.jsonl + annotations_odvg.jsonl (mmdet ODVG)
    tar=False,           # shards/NAME.tar: KEY.jpg + KEY.json (webdataset)
    save_images='auto',  # copy image bytes to OUT/images/ ('auto': for tar inputs)
    merge=True)          # annotations.jsonl once every shard is done
