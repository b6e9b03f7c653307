"""Sentences in other languages than English for the synthetic benchmark (all written for this
project): monolingual Spanish, German and French topics for held-out general sets, and a
Spanish–English code-switched topic whose English words are marked ``<en>…</en>``.

Same design as :mod:`clasr.bench.sentence_data` (templates × slot lists, drawn by
:mod:`clasr.bench.sentences`), with these writing rules: letters (accents included), spaces,
commas and one final ``.``; no numbers (only English has a number speller here), no inverted
marks ``¿ ¡``, no abbreviations. Slots are the topic's own lists only: the English shared lists
(days, months, numbers) would be unmarked English inside another language; the first names
are shared, since names are not words of either language.

A code-switched sentence keeps its markup until it is written: the manifest's ``text`` is the
sentence without the tags (:func:`plain_text`), the voice speaks it as SSML in which each
``<en>…</en>`` is read by eSpeak NG's English voice (:func:`ssml`).
"""

from __future__ import annotations

import re

from clasr.bench.sentence_data import SHARED_SLOTS

# topic → ISO 639-1 language of its sentences (of the sentence frame, for a code-switched topic,
# whose inserted words are marked with their own language)
LANGUAGE_TOPICS: dict[str, str] = {"spanish": "es", "german": "de", "french": "fr", "spanglish": "es"}

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
