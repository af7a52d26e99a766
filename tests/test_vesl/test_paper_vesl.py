"""The paper's VESL preset (App. C.1, Listing 1): PaperNounPhraseExtractor on
captions whose phrases are worked out by hand, the box labelling rule on a stub
score matrix, OWLv2 at a set input size, and the paper config.

The tagger of most tests is a pickled NLTK ``UnigramTagger`` over the lower-case
words below (unknown words: ``UNK``), so every tag is written here and the expected
phrases follow from the rules alone:

1. lower-case the caption; 2. NLTK word tokens; 3. generic words removed;
4. tags; 5. ``NP: {<DT>?<JJ.*>*<NN.*>+}``; 6. a chunk of only stop words dropped;
7. the first 20 chunks.
"""
import os.path as osp
import pickle

import pytest
import torch

from cllip_mm.registry import VESL_STAGES

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAPER_CONFIG = osp.join(ROOT, 'configs/vesl/vesl_paper_blip-large_owlv2-l14-ft-448_1xb8_images.py')

FRUITS = ('apple banana cherry date fig grape kiwi lemon mango melon olive orange papaya '
          'peach pear plum quince radish spinach tomato turnip walnut yam zucchini carrot').split()
TAGS = dict(
    **{w: 'DT' for w in ('a', 'an', 'the', 'all')},
    **{w: 'JJ' for w in ('red', 'green', 'golden', 'vintage', 'old', 'free')},
    **{w: 'NN' for w in ('dog', 'grass', 'retriever', 'puppy', 'beach', 'car', 'plot', 'x',
                         'y', 'cat', *FRUITS)},
    # generic words, tagged as a real tagger would: the preset must remove them first
    **{w: 'NN' for w in ('stock', 'photo', 'hd', 'wallpaper', 'royalty')},
    dogs='NNS', **{'i\u0307stanbul': 'NNP'},
    on='IN', of='IN', near='IN', **{'in': 'IN'}, **{'and': 'CC'},
    sits='VBZ', sleeps='VBZ', **{',': ',', '.': '.'})


@pytest.fixture(scope='module')
def tagger_path(tmp_path_factory):
    from nltk.tag import DefaultTagger, UnigramTagger
    tagger = UnigramTagger(model=TAGS, backoff=DefaultTagger('UNK'))
    path = tmp_path_factory.mktemp('paper_tagger') / 'tagger.pickle'
    path.write_bytes(pickle.dumps(tagger))
    return str(path)


@pytest.fixture(scope='module')
def extractor(tagger_path):
    return VESL_STAGES.build(dict(type='PaperNounPhraseExtractor', tagger_path=tagger_path))


def texts(extractor, caption):
    return [p.text for p in extractor.extract(caption).phrases]


def test_lower_case_first_determiner_and_adjectives_kept(extractor):
    # a/DT red/JJ dog/NN sits/VBZ on/IN the/DT green/JJ grass/NN ./.
    caption = 'A Red Dog sits on THE Green Grass.'
    out = extractor.extract(caption)
    assert [p.text for p in out.phrases] == ['a red dog', 'the green grass']
    assert [p.span for p in out.phrases] == [(0, 9), (18, 33)]
    assert [caption[s:e] for s, e in (p.span for p in out.phrases)] == \
        ['A Red Dog', 'THE Green Grass']


def test_generic_words_removed_before_tagging(extractor):
    # stock photo of a golden retriever puppy on the beach , hd wallpaper
    # -> (stock, photo, hd, wallpaper removed) of/IN a/DT golden/JJ retriever/NN
    #    puppy/NN on/IN the/DT beach/NN ,/,
    caption = 'Stock Photo of a golden retriever puppy on the beach, HD wallpaper'
    out = extractor.extract(caption)
    assert [p.text for p in out.phrases] == ['a golden retriever puppy', 'the beach']
    assert out.dropped['generic_words'] == 4
    assert [caption[s:e] for s, e in (p.span for p in out.phrases)] == \
        ['a golden retriever puppy', 'the beach']


def test_generic_word_inside_a_chunk_lies_inside_its_span(extractor):
    # vintage royalty free car -> vintage/JJ car/NN
    caption = 'Vintage Royalty Free Car'
    out = extractor.extract(caption)
    assert [p.text for p in out.phrases] == ['vintage car']
    assert out.phrases[0].span == (0, 24)


def test_chunk_of_only_stop_words_dropped(extractor):
    # a/DT plot/NN of/IN x/NN and/CC y/NN: chunks 'a plot', 'x', 'y'; 'y' is an NLTK
    # English stop word (so is 'a', but 'plot' is not)
    out = extractor.extract('A plot of X and Y')
    assert [p.text for p in out.phrases] == ['a plot', 'x']
    assert out.dropped['stop_words'] == 1


def test_at_most_one_determiner(extractor):
    # all/DT the/DT dogs/NNS near/IN an/DT old/JJ car/NN: <DT>? takes 'the' only
    assert texts(extractor, 'All the dogs near an old car') == ['the dogs', 'an old car']


def test_first_20_chunks_in_caption_order(extractor):
    caption = ', '.join(w.capitalize() for w in FRUITS)   # 25 one-noun chunks
    out = extractor.extract(caption)
    assert [p.text for p in out.phrases] == [
        'apple', 'banana', 'cherry', 'date', 'fig', 'grape', 'kiwi', 'lemon', 'mango', 'melon',
        'olive', 'orange', 'papaya', 'peach', 'pear', 'plum', 'quince', 'radish', 'spinach',
        'tomato']
    assert out.dropped['over_max_phrases'] == 5


def test_sentences_split_as_word_tokenize(extractor):
    # a red dog . the cat sits . (one tokenizer over the whole text would leave 'dog.')
    assert texts(extractor, 'A red dog. The cat sits.') == ['a red dog', 'the cat']


def test_punkt_parameters_from_a_directory(tagger_path, tmp_path):
    """``punkt_path`` loads Punkt's tab files (as nltk_data's punkt_tab/english); an
    abbreviation there ('dog', made up to show the effect) joins the sentences, so
    'dog.' stays one token (tagged UNK) and 'a red dog' is no chunk."""
    from nltk.tokenize.punkt import PunktParameters, save_punkt_params

    from cllip_mm.vesl.phrase_extractors import authorize_nltk_dir
    params = PunktParameters()
    params.abbrev_types.add('dog')
    punkt_dir = tmp_path / 'english'
    authorize_nltk_dir(str(tmp_path))
    save_punkt_params(params, str(punkt_dir))
    ex = VESL_STAGES.build(dict(type='PaperNounPhraseExtractor', tagger_path=tagger_path,
                                punkt_path=str(punkt_dir)))
    assert texts(ex, 'A red dog. The cat sits.') == ['the cat']
    with pytest.raises(FileNotFoundError, match='punkt_path'):
        VESL_STAGES.build(dict(type='PaperNounPhraseExtractor', tagger_path=tagger_path,
                               punkt_path=str(tmp_path / 'nope')))


def test_duplicates_kept_unless_asked(extractor, tagger_path):
    assert texts(extractor, 'a dog and a dog') == ['a dog', 'a dog']
    dedup = VESL_STAGES.build(dict(type='PaperNounPhraseExtractor', tagger_path=tagger_path,
                                   deduplicate=True))
    out = dedup.extract('a dog and a dog')
    assert [p.text for p in out.phrases] == ['a dog'] and out.dropped['duplicate'] == 1


def test_span_through_a_lower_case_that_grows(extractor):
    # 'İ'.lower() is 'i' + U+0307: the lowered caption is one character longer
    caption = 'A Dog in İstanbul'
    out = extractor.extract(caption)
    assert [p.text for p in out.phrases] == ['a dog', 'i\u0307stanbul']
    assert [p.span for p in out.phrases] == [(0, 5), (9, 17)]
    assert caption[9:17] == 'İstanbul'


def test_empty_and_generic_only_captions(extractor):
    assert [r.phrases for r in extractor(['', 'HD wallpaper'])] == [[], []]


def test_stopwords_from_a_file(tagger_path, tmp_path):
    (tmp_path / 'english').write_text('a\nplot\n')
    ex = VESL_STAGES.build(dict(type='PaperNounPhraseExtractor', tagger_path=tagger_path,
                                stopwords=str(tmp_path)))
    assert texts(ex, 'A plot of X and Y') == ['x', 'y']


def test_with_the_tiny_perceptron_tagger(vesl_models):
    """The tiny averaged perceptron (cllip_mm.testing.TAGGED_SENTENCES) tags this
    lower-cased caption a/DT red/JJ dog/NN on/IN the/DT green/JJ grass/NN by/IN
    the/DT river/NN ./. (checked below)."""
    ex = VESL_STAGES.build(dict(type='PaperNounPhraseExtractor',
                                tagger_path=vesl_models['tagger']))
    caption = 'A Red Dog on THE green grass by the river.'
    assert [t for _, t in ex.tagger.tag(
        ['a', 'red', 'dog', 'on', 'the', 'green', 'grass', 'by', 'the', 'river', '.'])] == \
        ['DT', 'JJ', 'NN', 'IN', 'DT', 'JJ', 'NN', 'IN', 'DT', 'NN', '.']
    assert texts(ex, caption) == ['a red dog', 'the green grass', 'the river']


def test_box_labelling_rule():
    """Each box takes its single most confident phrase; kept when that confidence
    is above 0.1. Column 2 pads the batch (the image has 2 phrases)."""
    from cllip_mm.vesl.detectors import label_boxes
    probs = torch.tensor([[0.05, 0.30, 0.99],    # phrase 1 (0.30); the pad is ignored
                          [0.10, 0.02, 0.50],    # best 0.10 is not above 0.1: dropped
                          [0.40, 0.35, 0.00],    # phrase 0 only, one phrase per box
                          [0.08, 0.09, 0.95]])   # best real phrase 0.09: dropped
    keep, scores, labels = label_boxes(probs, num_phrases=2, score_thr=0.1)
    assert keep.tolist() == [0, 2]
    assert labels.tolist() == [1, 0]
    assert scores.tolist() == pytest.approx([0.30, 0.40])
    keep, scores, labels = label_boxes(probs, num_phrases=2)
    assert keep.tolist() == [0, 1, 2, 3] and labels.tolist() == [1, 0, 0, 1]


def test_owlv2_image_size_and_threshold(vesl_models):
    import numpy as np
    from PIL import Image
    img = [Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 80, 3),
                                                             dtype=np.uint8))]
    phrases = [['red dog', 'cat']]
    full = VESL_STAGES.build(dict(type='OWLv2Detector', model_path=vesl_models['detector'],
                                  image_size=48))
    assert full.processor.image_processor.size == dict(height=48, width=48)
    out = full(img, phrases)[0]
    assert len(out) == (48 // 16) ** 2          # one box per patch of the 3 x 3 grid
    thr = float(out.scores.median())
    kept = VESL_STAGES.build(dict(type='OWLv2Detector', model_path=vesl_models['detector'],
                                  image_size=48, score_thr=thr))(img, phrases)[0]
    mask = out.scores > thr
    assert 0 < len(kept) < len(out)
    torch.testing.assert_close(kept.scores, out.scores[mask])
    torch.testing.assert_close(kept.bboxes, out.bboxes[mask])
    assert kept.labels.tolist() == out.labels[mask].tolist()
    with pytest.raises(ValueError, match='patch size'):
        VESL_STAGES.build(dict(type='OWLv2Detector', model_path=vesl_models['detector'],
                               image_size=50))


def test_paper_config():
    from mmengine.config import Config
    cfg = Config.fromfile(PAPER_CONFIG)
    assert cfg.phrase_extractor.type == 'PaperNounPhraseExtractor'
    assert cfg.phrase_extractor.max_phrases == 20
    assert cfg.detector.model_path == 'checkpoints/vesl/owlv2-large-patch14-finetuned'
    assert cfg.detector.image_size == 448 and cfg.detector.score_thr == 0.1
    assert cfg.filters == []


def test_paper_config_pipeline_on_tiny_models(vesl_models, vesl_images):
    """The paper config end to end on the tiny models (OWLv2 run at 448 px)."""
    import glob

    from cllip_mm.testing.vesl import tiny_vesl_config
    from cllip_mm.vesl.pipeline import VESLPipeline
    from cllip_mm.vesl.sources import InputItem
    cfg = tiny_vesl_config(vesl_models, base=PAPER_CONFIG)
    pipe = VESLPipeline(cfg.captioner, cfg.phrase_extractor, cfg.detector, cfg.filters,
                        device='cpu', dtype='float32')
    assert type(pipe.phrase_extractor).__name__ == 'PaperNounPhraseExtractor'
    paths = sorted(glob.glob(osp.join(vesl_images, '*.jpg')))[:2]
    items = [InputItem(key=f'img{i}', ext='.jpg', data=open(p, 'rb').read(), meta={}, source=p,
                       path=p) for i, p in enumerate(paths)]
    for r in pipe(items):
        assert r.error is None
        assert (r.regions.scores > 0.1).all()
        if len(r.regions):
            assert r.regions.labels.max() < len(r.phrases)
