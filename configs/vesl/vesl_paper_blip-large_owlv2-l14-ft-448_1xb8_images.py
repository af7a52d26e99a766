# VESL as the CLOC paper's App. C.1 / Listing 1 states it (arXiv 2410.02746 v2), step for
# step: phrase extraction of Listing 1, OWLv2 L/14 (ST+FT) at 448 x 448, each box labelled
# with its single most confident phrase and kept when that confidence is above 0.1, no
# other filter. Checkpoints are read from checkpoints/vesl/ (docs/vesl.md); nothing is
# fetched at run time. [paper] / [ours] as in docs/vesl.md.
_base_ = ['../_base_/vesl/vesl_runtime.py']

# [ours] The paper re-captions with VeCap / VeCap2 (long, visually enriched captions);
# those captioners are not public, BLIP large stands in.
captioner = dict(
    type='HFCaptioner',
    model_path='checkpoints/vesl/blip-image-captioning-large',
    prompt=None,
    max_new_tokens=40,
    num_beams=3)
phrase_extractor = dict(
    # App. C.1, Listing 1: lower-case the caption, nltk word tokens, the generic words
    # removed, POS tags, NP: {<DT>?<JJ.*>*<NN.*>+} chunks, all-stop-word chunks dropped.
    type='PaperNounPhraseExtractor',
    tagger_path='checkpoints/vesl/nltk_data/taggers/averaged_perceptron_tagger_eng',
    # [ours] NLTK data read locally: Punkt's English parameters (None: untrained Punkt,
    # which differs around abbreviations and initials) and NLTK's English stop words (None: the
    # copy in cllip_mm.vesl.phrase_extractors.NLTK_ENGLISH_STOPWORDS).
    punkt_path=None,
    stopwords=None,
    max_phrases=20)       # App. C.1, Listing 1: the first 20 chunks, in caption order
detector = dict(
    type='OWLv2Detector',
    # App. C.1: the official OWLv2 L/14 (ST+FT) checkpoint ([ours]: its Hugging Face
    # name is owlv2-large-patch14-finetuned; -ensemble is the ST/FT weight ensemble).
    model_path='checkpoints/vesl/owlv2-large-patch14-finetuned',
    query_template='{}',  # [ours] the phrase itself; the paper names no prompt template
    image_size=448,       # App. C.1: images at 448 x 448 (position embeddings interpolated)
    score_thr=0.1)        # App. C.1: a box is kept when its confidence is above 0.1, labelled
                          # with its single most confident phrase (label_boxes)
# App. C.1 names no NMS, box-size or per-image cap: no filter after the detector.
filters = []
dtype = 'bfloat16'        # [ours] GPU inference precision
