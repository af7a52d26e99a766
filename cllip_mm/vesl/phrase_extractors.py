# Copyright (c) cllip_mm contributors. All rights reserved.
"""Phrase extractors: caption -> noun phrases (VESL stage 2).

``extractor(captions) -> list[ExtractedPhrases]``; each :class:`Phrase` keeps the
character span it came from, so that ODVG's ``tokens_positive`` is exact.

- :class:`PaperNounPhraseExtractor`: the CLOC paper's phrase extraction (App. C.1,
  Listing 1), step for step;
- :class:`NLTKPhraseExtractor`: this project's own variant (a wider grammar,
  determiners stripped, de-duplication, an exclude list).
"""
import os.path as osp
import pickle
from abc import ABC, abstractmethod
from collections import Counter
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from cllip_mm.registry import VESL_STAGES

#: Noun-phrase chunk grammar over Penn Treebank tags: optional determiner /
#: possessive / number, modifiers (adjectives, participles, nouns), head noun(s).
DEFAULT_GRAMMAR = r'NP: {<DT|PRP\$|CD>*<JJ.*|VBN|VBG|NN.*|POS>*<NN.*>+}'

#: Words that say nothing about a region ("a photo of ..."), dropped as phrases.
DEFAULT_EXCLUDE = ('image', 'picture', 'photo', 'photograph', 'view', 'close up', 'closeup',
                   'front', 'top', 'side', 'left', 'right', 'middle', 'background', 'foreground')


class Phrase(NamedTuple):
    """A noun phrase: its query ``text`` and the ``span`` (start, end) it comes from
    in the caption (``caption[start:end]``, before normalisation)."""
    text: str
    span: Tuple[int, int]


class ExtractedPhrases(NamedTuple):
    """The phrases of one caption and how many candidates each rule dropped."""
    phrases: List[Phrase]
    dropped: Counter


def authorize_nltk_dir(path: str) -> None:
    """Let NLTK (>= 3.9.3 sandboxes model files to ``nltk.data.path``) read / write
    the model directory ``path`` that the config names explicitly."""
    import nltk
    real = osp.realpath(path)
    if real not in nltk.data.path:
        nltk.data.path.append(real)


def load_tagger(path: str, lang: str = 'eng'):
    """An NLTK POS tagger from a local path.

    - a directory: NLTK's averaged perceptron in its JSON format (what
      ``PerceptronTagger.save_to_json`` writes and what ``nltk_data/taggers/
      averaged_perceptron_tagger_eng/`` holds);
    - a ``.pickle`` / ``.pkl`` file: any pickled NLTK tagger (e.g. a trained
      ``UnigramTagger`` / ``BigramTagger`` chain). Only load pickles you made.
    """
    if osp.isdir(path):
        from nltk.tag.perceptron import PerceptronTagger
        authorize_nltk_dir(path)
        return PerceptronTagger(lang=lang, loc=osp.realpath(path))
    if osp.isfile(path) and path.endswith(('.pickle', '.pkl')):
        with open(path, 'rb') as f:
            tagger = pickle.load(f)
        if not hasattr(tagger, 'tag'):
            raise TypeError(f'{path}: expected a pickled NLTK tagger, got {type(tagger)}')
        return tagger
    raise FileNotFoundError(
        f'tagger_path {path!r} is neither a perceptron tagger directory nor a .pickle file '
        '(see docs/vesl.md for where to get NLTK\'s English tagger)')


class _TaggedChunkExtractor(ABC):
    """What both phrase extractors share: the VESL stage ``'phrases'`` (captions in, one
    :class:`ExtractedPhrases` per caption out), a POS tagger (:func:`load_tagger`), an
    ``nltk.RegexpParser(grammar)`` and at most ``max_phrases`` phrases per caption.
    ``device`` / ``dtype`` (of the stage interface) are not used."""

    name = 'phrases'

    def __init__(self, tagger_path: str, lang: str, grammar: str, max_phrases: int) -> None:
        import nltk
        if max_phrases < 1:
            raise ValueError(f'max_phrases must be >= 1, got {max_phrases}')
        self.tagger = load_tagger(tagger_path, lang)
        self.parser = nltk.RegexpParser(grammar)
        self.max_phrases = max_phrases

    def __call__(self, captions: Sequence[str]) -> List[ExtractedPhrases]:
        return [self.extract(c) for c in captions]

    @abstractmethod
    def extract(self, caption: str) -> ExtractedPhrases:
        """The phrases of one caption (each subclass's own tokenizer and chunk rules)."""


@VESL_STAGES.register_module()
class NLTKPhraseExtractor(_TaggedChunkExtractor):
    """Noun phrases by NLTK regexp chunking over a POS tagger: this project's own
    variant of the paper's extraction (:class:`PaperNounPhraseExtractor`).

    Tokenises with NLTK's Treebank tokenizer (no data files), tags with the tagger at
    ``tagger_path`` (:func:`load_tagger`), chunks with ``nltk.RegexpParser(grammar)``
    and turns each ``NP`` chunk into a query: leading determiners / possessives
    (``strip_tags``) removed, lower-cased, white space collapsed. Phrases are
    de-duplicated (first occurrence kept), excluded words dropped and at most
    ``max_phrases`` kept, in caption order.

    Args:
        tagger_path (str): See :func:`load_tagger`.
        lang (str): Language code of a perceptron tagger directory.
        grammar (str): ``RegexpParser`` grammar; its ``NP`` chunks are the phrases.
        strip_tags (tuple[str]): Tags removed from the start of a chunk.
        lowercase (bool): Lower-case the phrase text.
        exclude (tuple[str]): Phrases (after normalisation) that are dropped.
        min_chars (int): Shorter phrases are dropped.
        max_phrases (int): Detector queries per image (the paper: 20).
    """

    def __init__(self,
                 tagger_path: str,
                 lang: str = 'eng',
                 grammar: str = DEFAULT_GRAMMAR,
                 strip_tags: Sequence[str] = ('DT', 'PRP$', 'POS'),
                 lowercase: bool = True,
                 exclude: Sequence[str] = DEFAULT_EXCLUDE,
                 min_chars: int = 2,
                 max_phrases: int = 20,
                 device: Optional[str] = None,
                 dtype: Optional[str] = None) -> None:
        from nltk.tokenize import TreebankWordTokenizer
        super().__init__(tagger_path, lang, grammar, max_phrases)
        self.tokenizer = TreebankWordTokenizer()
        self.strip_tags = set(strip_tags)
        self.lowercase = lowercase
        self.exclude = {e.lower() for e in exclude}
        self.min_chars = min_chars

    def chunks(self, caption: str) -> List[Tuple[int, int]]:
        """Character spans of the ``NP`` chunks of ``caption`` (leading
        ``strip_tags`` tokens removed), in caption order."""
        from nltk.tree import Tree
        spans = list(self.tokenizer.span_tokenize(caption))
        if not spans:
            return []
        tags = [tag for _, tag in self.tagger.tag([caption[s:e] for s, e in spans])]
        # Leaves carry the token index, so chunks map back to character spans.
        tree = self.parser.parse(list(zip(range(len(spans)), tags)))
        out = []
        for node in tree:
            if not isinstance(node, Tree) or node.label() != 'NP':
                continue
            leaves = list(node.leaves())
            while leaves and leaves[0][1] in self.strip_tags:
                leaves.pop(0)
            if leaves:
                out.append((spans[leaves[0][0]][0], spans[leaves[-1][0]][1]))
        return out

    def extract(self, caption: str) -> ExtractedPhrases:
        dropped, seen, phrases = Counter(), set(), []
        for start, end in self.chunks(caption):
            text = ' '.join(caption[start:end].split())
            text = text.lower() if self.lowercase else text
            if len(text) < self.min_chars or text.lower() in self.exclude:
                dropped['excluded'] += 1
            elif text in seen:
                dropped['duplicate'] += 1
            elif len(phrases) >= self.max_phrases:
                dropped['over_max_phrases'] += 1
            else:
                seen.add(text)
                phrases.append(Phrase(text, (start, end)))
        return ExtractedPhrases(phrases, dropped)


#: The paper's chunk grammar (App. C.1, Listing 1).
PAPER_GRAMMAR = r'NP: {<DT>?<JJ.*>*<NN.*>+}'

#: The generic words the paper removes from the tokens before tagging (App. C.1,
#: Listing 1; the list of Minderer et al. 2024, A.2), copied from the spec.
PAPER_GENERIC_WORDS = (
    'alibaba', 'aliexpress', 'amazon', 'available', 'background', 'blog', 'buy', 'co', 'com',
    'description', 'diy', 'download', 'facebook', 'free', 'gif', 'hd', 'ideas', 'illustration',
    'illustrations', 'image', 'images', 'img', 'instagram', 'jpg', 'online', 'org', 'original',
    'page', 'pdf', 'photo', 'photography', 'photos', 'picclick', 'picture', 'pictures', 'png',
    'porn', 'premium', 'resolution', 'royalty', 'sale', 'sex', 'shutterstock', 'stock', 'svg',
    'thumbnail', 'tumblr', 'tumgir', 'twitter', 'uk', 'uploaded', 'vector', 'vectors', 'video',
    'videos', 'wallpaper', 'wallpapers', 'wholesale', 'www', 'xxx', 'youtube')

#: NLTK's English stop-word list (``nltk.corpus.stopwords.words('english')``, the
#: 179 words of nltk_data's ``corpora/stopwords/english`` before its 2024 update), a
#: copy so that no NLTK data download is needed. The 2024 list adds 19 contractions
#: ("he's", "i'm", "we've", ...); NLTK's word tokenizer splits every one of them
#: ("he" + "'s"), so no token can tell the two lists apart. Pass ``stopwords=PATH``
#: to read nltk_data's file instead.
NLTK_ENGLISH_STOPWORDS = (
    'i', 'me', 'my', 'myself', 'we', 'our', 'ours', 'ourselves', 'you', "you're", "you've",
    "you'll", "you'd", 'your', 'yours', 'yourself', 'yourselves', 'he', 'him', 'his',
    'himself', 'she', "she's", 'her', 'hers', 'herself', 'it', "it's", 'its', 'itself', 'they',
    'them', 'their', 'theirs', 'themselves', 'what', 'which', 'who', 'whom', 'this', 'that',
    "that'll", 'these', 'those', 'am', 'is', 'are', 'was', 'were', 'be', 'been', 'being',
    'have', 'has', 'had', 'having', 'do', 'does', 'did', 'doing', 'a', 'an', 'the', 'and',
    'but', 'if', 'or', 'because', 'as', 'until', 'while', 'of', 'at', 'by', 'for', 'with',
    'about', 'against', 'between', 'into', 'through', 'during', 'before', 'after', 'above',
    'below', 'to', 'from', 'up', 'down', 'in', 'out', 'on', 'off', 'over', 'under', 'again',
    'further', 'then', 'once', 'here', 'there', 'when', 'where', 'why', 'how', 'all', 'any',
    'both', 'each', 'few', 'more', 'most', 'other', 'some', 'such', 'no', 'nor', 'not', 'only',
    'own', 'same', 'so', 'than', 'too', 'very', 's', 't', 'can', 'will', 'just', 'don',
    "don't", 'should', "should've", 'now', 'd', 'll', 'm', 'o', 're', 've', 'y', 'ain', 'aren',
    "aren't", 'couldn', "couldn't", 'didn', "didn't", 'doesn', "doesn't", 'hadn', "hadn't",
    'hasn', "hasn't", 'haven', "haven't", 'isn', "isn't", 'ma', 'mightn', "mightn't", 'mustn',
    "mustn't", 'needn', "needn't", 'shan', "shan't", 'shouldn', "shouldn't", 'wasn', "wasn't",
    'weren', "weren't", 'won', "won't", 'wouldn', "wouldn't")


def load_word_list(path: str) -> List[str]:
    """One word a line (nltk_data's ``corpora/stopwords/english``); a directory is
    read as an NLTK stop-word corpus, its ``english`` file."""
    if osp.isdir(path):
        path = osp.join(path, 'english')
    if not osp.isfile(path):
        raise FileNotFoundError(f'stopwords {path!r}: no such word-list file')
    with open(path, encoding='utf-8') as f:
        return [w.strip() for w in f if w.strip()]


def lower_with_offsets(text: str) -> Tuple[str, List[int]]:
    """``text.lower()`` and, for each of its characters, the index of the character
    of ``text`` it comes from. ``str.lower`` keeps the length of ASCII (and of
    almost all) text, and then the map is the identity; a few characters grow
    (``'İ'.lower()`` is ``'i'`` + a combining dot), and then each character is
    lower-cased alone (``'Σ'`` at the end of a word becomes ``'σ'``, not ``'ς'``)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered, list(range(len(text)))
    chars, origin = [], []
    for i, ch in enumerate(text):
        low = ch.lower()
        chars.append(low)
        origin.extend([i] * len(low))
    return ''.join(chars), origin


@VESL_STAGES.register_module()
class PaperNounPhraseExtractor(_TaggedChunkExtractor):
    """The CLOC paper's phrase candidates (App. C.1, Listing 1), step for step:

    1. lower-case the whole caption;
    2. tokenize it with NLTK's word tokenizer (``nltk.word_tokenize``: Punkt
       sentences, then ``NLTKWordTokenizer`` in each);
    3. remove the generic words (:data:`PAPER_GENERIC_WORDS`) from the tokens;
    4. POS-tag the remaining tokens with the tagger at ``tagger_path``;
    5. chunk with ``nltk.RegexpParser('NP: {<DT>?<JJ.*>*<NN.*>+}')``;
    6. drop a chunk whose words are all stop words (NLTK's English list);
    7. keep the first ``max_phrases`` (20) chunks, in caption order.

    A phrase's text is its chunk's tokens joined by single spaces (so ``'a'`` /
    ``'the'`` stay in it); duplicates are kept, as the listing does not remove them
    (``deduplicate=True`` is an option of ours). Its ``span`` runs from the first to
    the last character of its chunk in the original caption (mapped back through
    the lower-casing, see :func:`lower_with_offsets`); a generic word removed from
    between two words of a chunk (``'red stock car'`` -> ``'red car'``) lies
    inside the span.

    NLTK data comes from local paths, as for :class:`NLTKPhraseExtractor`: the
    tagger from ``tagger_path`` (:func:`load_tagger`); Punkt's English sentence
    parameters from ``punkt_path`` (nltk_data's ``tokenizers/punkt_tab/english``
    directory; without it an untrained ``PunktSentenceTokenizer`` splits sentences,
    which differs from the trained one around abbreviations and initials); the stop words
    from ``stopwords`` (a file / corpus directory, or a word list; None: the copy
    :data:`NLTK_ENGLISH_STOPWORDS`).

    Args:
        tagger_path (str): See :func:`load_tagger`.
        lang (str): Language code of a perceptron tagger directory.
        punkt_path (str, optional): Punkt ``punkt_tab/english`` directory.
        stopwords (str | Sequence[str], optional): NLTK's English stop words.
        generic_words (Sequence[str]): Tokens removed before tagging.
        grammar (str): ``RegexpParser`` grammar; its ``NP`` chunks are the phrases.
        max_phrases (int): Phrases (detector queries) per caption (the paper: 20).
        deduplicate (bool): Drop repeated phrases ([ours]; the paper: False).
    """

    def __init__(self,
                 tagger_path: str,
                 lang: str = 'eng',
                 punkt_path: Optional[str] = None,
                 stopwords: Union[str, Sequence[str], None] = None,
                 generic_words: Sequence[str] = PAPER_GENERIC_WORDS,
                 grammar: str = PAPER_GRAMMAR,
                 max_phrases: int = 20,
                 deduplicate: bool = False,
                 device: Optional[str] = None,
                 dtype: Optional[str] = None) -> None:
        from nltk.tokenize import NLTKWordTokenizer
        from nltk.tokenize.punkt import PunktSentenceTokenizer
        super().__init__(tagger_path, lang, grammar, max_phrases)
        self.word_tokenizer = NLTKWordTokenizer()
        if punkt_path is None:
            self.sent_tokenizer = PunktSentenceTokenizer()
        else:
            from nltk.data import FileSystemPathPointer
            from nltk.tokenize.punkt import load_punkt_params
            if not osp.isdir(punkt_path):
                raise FileNotFoundError(f'punkt_path {punkt_path!r} is not a directory '
                                        '(nltk_data/tokenizers/punkt_tab/english)')
            authorize_nltk_dir(punkt_path)
            self.sent_tokenizer = PunktSentenceTokenizer(
                load_punkt_params(FileSystemPathPointer(osp.realpath(punkt_path))))
        if stopwords is None:
            stopwords = NLTK_ENGLISH_STOPWORDS
        elif isinstance(stopwords, str):
            stopwords = load_word_list(stopwords)
        self.stopwords = frozenset(stopwords)
        self.generic_words = frozenset(generic_words)
        self.deduplicate = deduplicate

    def tokenize(self, text: str) -> List[Tuple[int, int]]:
        """``nltk.word_tokenize(text)`` as character spans into ``text``."""
        spans = []
        for s_start, s_end in self.sent_tokenizer.span_tokenize(text):
            spans.extend((s_start + a, s_start + b)
                         for a, b in self.word_tokenizer.span_tokenize(text[s_start:s_end]))
        return spans

    def extract(self, caption: str) -> ExtractedPhrases:
        from nltk.tree import Tree
        dropped, seen, phrases = Counter(), set(), []
        lowered, origin = lower_with_offsets(caption)
        spans = self.tokenize(lowered)
        words = [lowered[s:e] for s, e in spans]
        kept = [i for i, w in enumerate(words) if w not in self.generic_words]
        dropped['generic_words'] += len(spans) - len(kept)  # tokens, not phrases
        if not kept:
            return ExtractedPhrases(phrases, dropped)
        tags = [tag for _, tag in self.tagger.tag([words[i] for i in kept])]
        # Leaves carry the token index, so chunks map back to character spans.
        tree = self.parser.parse(list(zip(kept, tags)))
        for node in tree:
            if not isinstance(node, Tree) or node.label() != 'NP':
                continue
            idx = [i for i, _ in node.leaves()]
            chunk = [words[i] for i in idx]
            text = ' '.join(chunk)
            if all(w in self.stopwords for w in chunk):
                dropped['stop_words'] += 1
            elif self.deduplicate and text in seen:
                dropped['duplicate'] += 1
            elif len(phrases) >= self.max_phrases:
                dropped['over_max_phrases'] += 1
            else:
                seen.add(text)
                start, end = origin[spans[idx[0]][0]], origin[spans[idx[-1]][1] - 1] + 1
                phrases.append(Phrase(text, (start, end)))
        return ExtractedPhrases(phrases, dropped)
