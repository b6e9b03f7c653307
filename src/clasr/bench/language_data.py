"""Sentences in other languages than English for the synthetic benchmark (all written for this
project): monolingual Spanish, German and French topics for held-out general sets, and two
code-switched topics whose English words are marked ``<en>…</en>``: Spanish–English
(``spanglish``) and Mandarin–English (``mandarin_english``, Simplified Chinese frames with
English words, as heard in offices and schools of mainland China).

Same design as :mod:`clasr.bench.sentence_data` (templates × slot lists, drawn by
:mod:`clasr.bench.sentences`), with these writing rules: letters (accents included), spaces,
commas and one final ``.``; no numbers (only English has a number speller here), no inverted
marks ``¿ ¡``, no abbreviations. Chinese is written as Chinese is: Chinese characters with no
spaces, the full-width comma ``，`` and one final ``。``, and an English word joined to the
characters around it without spaces ("我今天很busy。"; the mixed error rate counts each
character and each English word as one unit however they are spaced). Slots are the topic's
own lists only: the English shared lists (days, months, numbers) would be unmarked English
inside another language; the first names are shared by the Latin-script languages, since
names are not words of either language, while the Chinese topic has Chinese names.

A code-switched sentence keeps its markup until it is written: the manifest's ``text`` is the
sentence without the tags (:func:`plain_text`), the voice speaks it as SSML in which each
``<en>…</en>`` is read by eSpeak NG's English voice (:func:`ssml`).
"""

from __future__ import annotations

import re

from clasr.bench.sentence_data import SHARED_SLOTS

# topic → ISO 639-1 language of its sentences (of the sentence frame, for a code-switched topic,
# whose inserted words are marked with their own language)
LANGUAGE_TOPICS: dict[str, str] = {
    "spanish": "es", "german": "de", "french": "fr", "spanglish": "es", "mandarin_english": "zh",
}

CODE_SWITCHED_TOPICS: frozenset[str] = frozenset({"spanglish", "mandarin_english"})
"""Topics whose every sentence switches language: scored by the mixed error rate."""

_NAMES = {"name": SHARED_SLOTS["name"], "friend": SHARED_SLOTS["friend"]}

LANGUAGE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "spanish": (
        "{name} compró {food} en el mercado.",
        "{when}, {name} va a visitar a {friend} en {city}.",
        "Mi hermana prefiere {food} con {drink}.",
        "El tren para {city} sale {when_late}.",
        "{name} dejó {thing} en {place}.",
        "{name} y {friend} estudian {subject} juntos.",
        "Creo que {thing} está en {place}.",
    ),
    "german": (
        "{name} kauft {food} auf dem Markt.",
        "{when} fährt {name} mit dem Zug nach {city}.",
        "Meine Schwester trinkt am liebsten {drink}.",
        "Der Bus nach {city} kommt {when_late}.",
        "{name} hat {thing} {place} vergessen.",
        "{name} und {friend} lernen zusammen {subject}.",
        "Ich glaube, {thing} liegt {place}.",
    ),
    "french": (
        "{name} achète {food} au marché.",
        "{when}, {name} prend le train pour {city}.",
        "Ma soeur préfère boire {drink}.",
        "Le bus pour {city} arrive {when_late}.",
        "{name} a oublié {thing} {place}.",
        "{name} et {friend} étudient {subject} ensemble.",
        "Je crois que {thing} est {place}.",
    ),
    "spanglish": (
        "Mañana tengo {event} con {name}.",
        "{name}, mándame {document} antes de {deadline}.",
        "Estoy muy <en>busy</en> con {document} hoy.",
        "{name} quiere {plan} con {friend}.",
        "El <en>manager</en> canceló {event} de {deadline}.",
        "Ya revisé {document} y todo está <en>okay</en>.",
        "Después {plan_we} y luego {plan_we_too}.",
    ),
    "mandarin_english": (
        "{name}{when}要跟{friend}开{event}。",
        "{name}，{deadline}之前把{document}发给我。",
        "我今天真的很<en>busy</en>，没空看{document}。",
        "{name}周末想跟{friend}一起{plan}。",
        "我们的<en>manager</en>取消了{when}的{event_bare}。",
        "我已经<en>check</en>过{document}了，都没问题。",
        "{when}我们先{plan_we}，然后{plan_we_too}。",
        "这个<en>project</en>的<en>deadline</en>是{deadline}。",
    ),
}

LANGUAGE_SLOTS: dict[str, dict[str, tuple[str, ...]]] = {
    "spanish": {
        **_NAMES,
        "food": ("pan", "queso", "manzanas", "tomates", "pescado", "arroz", "naranjas", "cebollas", "lechuga", "fresas"),
        "drink": ("café", "leche", "té verde", "agua fría", "zumo de naranja", "chocolate caliente"),
        "city": ("Madrid", "Sevilla", "Valencia", "Granada", "Bilbao", "Toledo", "Málaga", "Salamanca"),
        "when": ("Mañana", "El sábado", "Esta tarde", "La semana que viene", "El domingo", "Esta noche"),
        "when_late": ("muy temprano", "por la tarde", "a mediodía", "por la noche", "con retraso", "cada hora"),
        "thing": ("las llaves", "el paraguas", "la cartera", "el libro", "las gafas", "el abrigo", "la mochila"),
        "place": ("la cocina", "el coche", "la oficina", "el armario", "la biblioteca", "el jardín", "la mesa"),
        "subject": ("historia", "química", "música", "geografía", "matemáticas", "biología"),
    },
    "german": {
        **_NAMES,
        "food": ("Brot", "Käse", "Äpfel", "Tomaten", "Fisch", "Reis", "Orangen", "Zwiebeln", "Salat", "Erdbeeren"),
        "drink": ("Kaffee", "Milch", "grünen Tee", "kaltes Wasser", "Orangensaft", "heiße Schokolade"),
        "city": ("Berlin", "Hamburg", "München", "Köln", "Dresden", "Leipzig", "Bremen", "Stuttgart"),
        "when": ("Morgen", "Am Samstag", "Heute Abend", "Nächste Woche", "Am Sonntag", "Heute Nachmittag"),
        "when_late": ("sehr früh", "am Nachmittag", "am Mittag", "in der Nacht", "mit Verspätung", "jede Stunde"),
        "thing": ("den Schlüssel", "den Regenschirm", "die Brille", "das Buch", "die Jacke", "den Rucksack"),
        "place": ("in der Küche", "im Auto", "im Büro", "im Schrank", "in der Bibliothek", "im Garten", "auf dem Tisch"),
        "subject": ("Geschichte", "Chemie", "Musik", "Erdkunde", "Mathematik", "Biologie"),
    },
    "french": {
        **_NAMES,
        "food": ("du pain", "du fromage", "des pommes", "des tomates", "du poisson", "du riz", "des oranges",
                 "des oignons", "de la salade", "des fraises"),
        "drink": ("du café", "du lait", "du thé vert", "de l'eau froide", "du jus d'orange", "du chocolat chaud"),
        "city": ("Paris", "Lyon", "Marseille", "Bordeaux", "Toulouse", "Nantes", "Lille", "Strasbourg"),
        "when": ("Demain", "Samedi", "Ce soir", "La semaine prochaine", "Dimanche", "Cet après midi"),
        "when_late": ("très tôt", "l'après midi", "à midi", "la nuit", "en retard", "toutes les heures"),
        "thing": ("les clés", "le parapluie", "le portefeuille", "le livre", "les lunettes", "le manteau", "le sac"),
        "place": ("dans la cuisine", "dans la voiture", "au bureau", "dans l'armoire", "à la bibliothèque",
                  "dans le jardin", "sur la table"),
        "subject": ("l'histoire", "la chimie", "la musique", "la géographie", "les mathématiques", "la biologie"),
    },
    "spanglish": {
        **_NAMES,
        "event": ("un <en>meeting</en>", "una <en>call</en>", "un <en>workshop</en>", "una <en>review</en>",
                  "un <en>brunch</en>", "una <en>interview</en>", "un <en>webinar</en>"),
        "document": ("el <en>report</en>", "el <en>link</en>", "las <en>slides</en>", "el <en>feedback</en>",
                     "el <en>budget</en>", "el <en>email</en>", "el <en>spreadsheet</en>"),
        "deadline": ("la reunión", "mañana", "la comida", "esta tarde", "el viernes", "las vacaciones"),
        "plan": ("ir de <en>shopping</en>", "ver una <en>movie</en>", "ir al <en>gym</en>", "pedir <en>delivery</en>",
                 "jugar <en>online</en>", "hacer un <en>road trip</en>"),
        "plan_we": ("vamos al <en>mall</en>", "hacemos el <en>check in</en>", "tomamos un <en>coffee</en>",
                    "vemos el <en>game</en>", "hacemos <en>jogging</en>"),
        "plan_we_too": ("cenamos en casa", "volvemos temprano", "llamamos a la familia", "descansamos un poco",
                        "salimos con amigos"),
    },
    "mandarin_english": {
        "name": ("王芳", "李明", "张伟", "刘洋", "陈静", "杨帆", "赵磊", "黄丽"),
        "friend": ("小王", "老李", "同事", "室友", "表姐", "老板", "客户", "导师"),
        "when": ("明天", "今天下午", "周六", "今天晚上", "下个星期", "明天上午"),
        "event": ("一个<en>meeting</en>", "一个<en>workshop</en>", "一次<en>review</en>", "一个<en>webinar</en>",
                  "一个<en>brainstorming</en>", "一个<en>sync</en>"),
        "event_bare": ("<en>meeting</en>", "<en>call</en>", "<en>workshop</en>", "<en>review</en>",
                       "<en>interview</en>", "<en>webinar</en>"),
        "document": ("那个<en>report</en>", "这个<en>link</en>", "那些<en>slides</en>", "你的<en>feedback</en>",
                     "新的<en>budget</en>", "那封<en>email</en>", "这个<en>spreadsheet</en>"),
        "deadline": ("开会", "明天", "吃午饭", "下班", "周五", "放假", "月底"),
        "plan": ("去<en>shopping</en>", "看一部<en>movie</en>", "去<en>gym</en>", "去<en>hiking</en>",
                 "去<en>camping</en>", "来一次<en>road trip</en>"),
        "plan_we": ("去<en>mall</en>逛逛", "办<en>check in</en>", "喝杯<en>coffee</en>", "看<en>game</en>",
                    "去<en>jogging</en>"),
        "plan_we_too": ("回家吃饭", "早点休息", "给家里打电话", "休息一下", "跟朋友出去玩"),
    },
}

_MARKED = re.compile(r"<(\w\w)>(.*?)</\1>")


def plain_text(sentence: str) -> str:
    """The sentence as written in the manifest: language tags removed, text kept."""
    return _MARKED.sub(r"\2", sentence)


def ssml(sentence: str) -> str:
    """The sentence as eSpeak NG SSML: each ``<xx>…</xx>`` spoken by the voice of language xx
    (``<voice xml:lang="xx">``), the rest by the domain's own voice."""
    return "<speak>" + _MARKED.sub(r'<voice xml:lang="\1">\2</voice>', sentence) + "</speak>"


def is_marked(sentence: str) -> bool:
    """True when the sentence switches language (holds a language tag)."""
    return _MARKED.search(sentence) is not None
