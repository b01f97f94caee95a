"""Hand-written caption maps for the offline corpus (see ../../../shared/CORPUS.md).

One map per Debian package: an ordered list of `Rule`s. A rule matches a sound file when its regular
expression is found in the file's lower-cased path inside the package (``usr/share/...``); the first
matching rule wins and files that no rule matches are dropped, because their names do not say what is
heard. Each rule carries the coarse category used by the prompt-adherence classifier, how the file is
turned into clips (`mode`), and 3-5 AudioCaps-style paraphrases, one of which is chosen per clip.

Paraphrases may use ``{lang}``: the language named by the rule's ``(?P<lang>...)`` group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Coarse categories; the prompt-adherence classifier predicts one of these.
CATEGORIES = (
    "instrument",  # sampled instruments rendered from generated MIDI
    "drums",  # drum kits: MIDI patterns or sequenced one-shots
    "speech",  # real recorded speech
    "synthetic_speech",  # espeak-ng
    "animal",
    "nature",  # wind, water, rain, fire, insects at night: ambience
    "machine",  # engines, vehicles, tools, workshops, weapons
    "impact",  # footsteps, doors, hits, explosions, breaking
    "keyboard",  # computer keyboards and typewriters
    "notification",  # desktop and phone alerts, bells, chimes
    "music",  # excerpts of game soundtracks
    "procedural",  # numpy: beeps, DTMF, sirens, alarms, metronome, noise, chirps, chords
)

# How a source file becomes clips.
MODES = (
    "oneshot",  # a short sound placed (and repeated) in the clip, augmented for extra variants
    "window",  # a long recording: several non-overlapping windows
    "words",  # short speech prompts of one speaker joined into 3-8 s clips
    "walk",  # footstep one-shots sequenced into a walk
    "typing",  # key presses sequenced into typing
)

DEFAULT_MODE = {
    "nature": "window",
    "music": "window",
    "speech": "words",
    "keyboard": "typing",
}

LANGUAGES = {
    "ar": "Arabic", "be": "Belarusian", "ca": "Catalan", "cs": "Czech", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "en_gb": "English", "es": "Spanish",
    "fi": "Finnish", "fr": "French", "ga": "Irish", "gl": "Galician", "he": "Hebrew",
    "hu": "Hungarian", "it": "Italian", "lt": "Lithuanian", "ml": "Malayalam", "nb": "Norwegian",
    "nds": "Low German", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese", "pt_br": "Portuguese",
    "ro": "Romanian", "ru": "Russian", "sl": "Slovenian", "sv": "Swedish", "tn": "Setswana",
    "uk": "Ukrainian", "wa": "Walloon",
}
LANG_RE = "(?P<lang>" + "|".join(sorted(LANGUAGES, key=len, reverse=True)) + ")"


@dataclass(frozen=True)
class Rule:
    pattern: str
    category: str
    captions: tuple[str, ...]
    mode: str = ""  # "" -> DEFAULT_MODE[category] or "oneshot"

    @property
    def clip_mode(self) -> str:
        return self.mode or DEFAULT_MODE.get(self.category, "oneshot")


def R(pattern: str, category: str, *captions: str, mode: str = "") -> Rule:
    return Rule(pattern, category, tuple(captions), mode)


def _animal(pattern: str, *captions: str) -> Rule:
    return R(pattern, "animal", *captions)


CAPTION_MAPS: dict[str, list[Rule]] = {
    # --- real speech -------------------------------------------------------------------------
    "asterisk-core-sounds-fr-g722": [
        R(r"fr_ca_f_june/(?!.*(beep|tone|silence))", "speech",
          "a woman speaks French", "a woman is speaking in French with short pauses",
          "a female voice reads out phone prompts in French",
          "a woman talks calmly in French"),
    ],
    "asterisk-core-sounds-it-g722": [
        R(r"it_it_m_carlo/(?!.*(beep|tone|silence))", "speech",
          "a man speaks Italian", "a man is speaking in Italian with short pauses",
          "a male voice reads out phone prompts in Italian", "a man talks calmly in Italian"),
    ],
    "asterisk-core-sounds-ru-g722": [
        R(r"ru_ru_f_\w+/(?!.*(beep|tone|silence))", "speech",
          "a woman speaks Russian", "a woman is speaking in Russian with short pauses",
          "a female voice reads out phone prompts in Russian", "a woman talks calmly in Russian"),
    ],
    "klettres-data": [
        R(rf"klettres/{LANG_RE}/alpha/", "speech",
          "a person says letters of the alphabet in {lang}",
          "a voice names single letters in {lang} with pauses",
          "someone slowly spells out letters in {lang}"),
        R(rf"klettres/{LANG_RE}/syllab/", "speech",
          "a person pronounces syllables in {lang}",
          "a voice says short syllables in {lang} with pauses",
          "someone slowly speaks single syllables in {lang}"),
    ],
    "ktuberling-data": [
        R(rf"ktuberling/sounds/{LANG_RE}/", "speech",
          "a person says single words in {lang}", "a voice speaks one word at a time in {lang}",
          "someone names objects in {lang} with short pauses"),
    ],
    "qabcs-data": [
        # animals and things that make a sound (all/noises); words whose sound is ambiguous are left out
        _animal(r"noises/(dog|dogmatix)\.", "a dog barks", "a dog is barking", "a dog barks a few times"),
        _animal(r"noises/cat\.", "a cat meows", "a cat is meowing", "a cat meows softly"),
        _animal(r"noises/(cow|calf)\.", "a cow moos", "a cow is mooing loudly", "cattle moo"),
        _animal(r"noises/(horse|foal)\.", "a horse neighs", "a horse whinnies", "a horse is neighing"),
        _animal(r"noises/(sheep)\.", "a sheep bleats", "a sheep is baaing", "sheep bleat"),
        _animal(r"noises/pig\.", "a pig oinks", "a pig grunts and squeals", "a pig is oinking"),
        _animal(r"noises/(duck|goose)\.", "a duck quacks", "ducks are quacking", "a bird quacks loudly"),
        _animal(r"noises/rooster\.", "a rooster crows", "a cock crows loudly", "a rooster is crowing"),
        _animal(r"noises/(bird|sparrow|iora|quetzal|quail|pheasant|wood_grouse|guinea_fowl|emu)\.",
                "a bird chirps", "birds are chirping", "a small bird sings", "a bird tweets"),
        _animal(r"noises/(crow)\.", "a crow caws", "a crow is cawing", "a black bird caws"),
        _animal(r"noises/(owl|eagle-owl)\.", "an owl hoots", "an owl is hooting", "an owl hoots at night"),
        _animal(r"noises/(wolf)\.", "a wolf howls", "a wolf is howling", "a wolf howls in the distance"),
        _animal(r"noises/(lion|tiger|jaguar|lynx)\.", "a big cat roars", "a lion roars",
                "a wild cat growls and roars"),
        _animal(r"noises/(bear)\.", "a bear growls", "a bear is growling", "a large animal roars"),
        _animal(r"noises/(elephant)\.", "an elephant trumpets", "an elephant is trumpeting loudly",
                "an elephant calls"),
        _animal(r"noises/(frog)\.", "a frog croaks", "frogs are croaking", "a frog croaks repeatedly"),
        _animal(r"noises/(chimpanzee|little_monkey)\.", "a monkey screeches", "a chimpanzee hoots",
                "monkeys are screaming"),
        _animal(r"noises/(grasshopper)\.", "a grasshopper chirps", "insects chirp", "a cricket chirps"),
        _animal(r"noises/(dolphin)\.", "a dolphin clicks and whistles", "a dolphin squeaks",
                "a dolphin calls"),
        _animal(r"noises/(hyena)\.", "a hyena laughs", "a hyena is cackling", "a hyena calls"),
        _animal(r"noises/(moose|deer)\.", "a deer bellows", "a moose calls", "a large animal bellows"),
        _animal(r"noises/(seagull|albatross|pelican|stork|heron|flamingo|vulture|booby)\.",
                "a large bird calls", "a seabird squawks", "a bird is squawking"),
        _animal(r"noises/(goat|yak)\.", "a goat bleats", "a yak grunts", "a farm animal bleats"),
        _animal(r"noises/(zebra)\.", "a zebra brays", "a zebra calls", "a zebra is braying"),
        R(r"noises/(accordion|squeezebox|hand_organ)\.", "instrument", "an accordion plays",
          "someone plays an accordion", "accordion music"),
        R(r"noises/(bagpipes)\.", "instrument", "bagpipes play", "someone plays the bagpipes",
          "bagpipe music drones"),
        R(r"noises/(violin|cello|gamba)\.", "instrument", "a string instrument is played with a bow",
          "a violin plays", "a bowed string instrument plays a tune"),
        R(r"noises/(guitar|electric_guitar|ukulele|lute)\.", "instrument", "a guitar is strummed",
          "someone plays a guitar", "a guitar plays a few notes"),
        R(r"noises/(piano|grand_piano)\.", "instrument", "a piano plays", "someone plays the piano",
          "piano notes ring out"),
        R(r"noises/(flute|recorder|western_concert_flute|quena|ney|xun)\.", "instrument", "a flute plays",
          "someone plays a flute", "a wind instrument plays a melody"),
        R(r"noises/(trumpet|horn|natural_horn)\.", "instrument", "a horn is blown", "a trumpet plays",
          "a brass instrument plays"),
        R(r"noises/(saxophone|clarinet|oboe|zurna)\.", "instrument", "a reed instrument plays",
          "a saxophone plays", "a woodwind instrument plays a tune"),
        R(r"noises/(harp|zither)\.", "instrument", "a harp is plucked", "someone plays a harp",
          "plucked strings ring"),
        R(r"noises/(harmonica)\.", "instrument", "a harmonica plays", "someone plays the harmonica",
          "a harmonica tune"),
        R(r"noises/(xylophone)\.", "instrument", "a xylophone plays", "someone strikes a xylophone",
          "xylophone notes"),
        R(r"noises/(organ)\.", "instrument", "an organ plays", "someone plays an organ", "organ chords"),
        R(r"noises/(drums|bass_drum|timpani|slit_drum)\.", "drums", "drums are beaten",
          "someone plays a drum", "a drum is struck several times"),
        R(r"noises/(cymbals)\.", "drums", "cymbals crash", "cymbals are struck", "a cymbal crashes"),
        R(r"noises/(maracas)\.", "drums", "maracas rattle", "someone shakes maracas", "a rattle shakes"),
        R(r"noises/(airplane)\.", "machine", "an airplane flies overhead", "a plane engine roars",
          "an aircraft passes by"),
        R(r"noises/(helicopter|quadrocopter)\.", "machine", "a helicopter flies", "rotor blades whir",
          "a helicopter hovers"),
        R(r"noises/(train)\.", "machine", "a train passes", "a train rattles along the tracks",
          "a locomotive goes by"),
        R(r"noises/(tractor|excavator)\.", "machine", "a tractor engine runs", "a diesel engine rumbles",
          "heavy machinery operates"),
        R(r"noises/(bicycle)\.", "machine", "a bicycle bell rings", "a bicycle is ridden",
          "a bike rattles along"),
        R(r"noises/(rocket)\.", "machine", "a rocket launches", "a rocket engine roars",
          "a rocket takes off"),
        R(r"noises/(clock|watch)\.", "machine", "a clock ticks", "a clock is ticking",
          "the steady ticking of a clock"),
        R(r"noises/(zipper)\.", "impact", "a zipper is opened", "someone pulls a zipper",
          "a zipper zips"),
        R(r"noises/(fire)\.", "nature", "a fire crackles", "flames are crackling", "a fire burns",
          mode="oneshot"),
        R(r"noises/(whistle)\.", "notification", "a whistle is blown", "someone blows a whistle",
          "a sharp whistle"),
        R(rf"abcs/{LANG_RE}/sounds/alpha/", "speech",
          "a person says letters of the alphabet in {lang}", "a voice names letters in {lang}",
          "someone recites the alphabet in {lang}"),
        R(rf"abcs/{LANG_RE}/sounds/words/", "speech",
          "a person says single words in {lang}", "a voice speaks one word at a time in {lang}",
          "someone names objects in {lang} with short pauses"),
    ],
    "hedgewars-data": [
        R(r"sounds/voices/(default|british|classic|mobster|pirate|surfer|hillbilly|singer)/",
          "speech", "a man shouts short exclamations in a cartoon voice",
          "a comic character yells short phrases", "a man speaks in short funny outbursts",
          "a cartoonish voice shouts and exclaims"),
        R(r"sounds/voices/(default_\w+|russian\w*)/", "speech",
          "a person shouts short exclamations in a cartoon voice",
          "a comic character yells short phrases in a foreign language",
          "a cartoonish voice exclaims short words"),
        R(r"sounds/(explosion|grenadeimpact|mineimpact|melonimpact|airmine_impact)", "impact",
          "an explosion booms", "a loud explosion", "something explodes with a bang"),
        R(r"sounds/(shotgunfire|gun|minigun|sniperreload|shotgunreload)", "machine",
          "gunshots are fired", "a gun fires", "a weapon is fired and reloaded"),
        R(r"sounds/(bee|beewater)\.", "animal", "a bee buzzes", "a bee is buzzing", "an insect buzzes"),
        R(r"sounds/(splash|droplet)", "nature", "water splashes", "something splashes into water",
          "a splash of water", mode="oneshot"),
        R(r"sounds/(steps)\.", "impact", "footsteps", "someone walks", "light footsteps",
          mode="oneshot"),
        R(r"sounds/(plane|rcplane|ufo)\.", "machine", "an aircraft engine hums", "a small plane flies by",
          "a propeller plane buzzes"),
        R(r"sounds/(drillgun|pickhammer|blowtorch|flamethrower)\.", "machine",
          "a power tool runs", "a pneumatic drill hammers", "a machine tool whirs"),
        R(r"sounds/(hammer|baseballbat|bump|knife_impact|graveimpact|whipcrack)\.", "impact",
          "something is hit hard", "a heavy thud", "a sharp impact"),
        R(r"sounds/(countdown|beep|minetick)\.", "notification", "an electronic beep",
          "a device beeps", "short beeping"),
        R(r"sounds/(shutterclick)\.", "machine", "a camera shutter clicks", "a camera takes a picture",
          "a shutter click"),
        R(r"music/", "music", "upbeat video game music plays", "a cheerful game soundtrack",
          "instrumental music from a video game"),
    ],
    "widelands-data": [
        _animal(r"animals/bird\d", "birds chirp", "a bird sings", "birds are singing outdoors"),
        _animal(r"animals/boar", "a boar grunts", "a wild pig snorts", "a pig grunts"),
        _animal(r"animals/coyote", "a coyote howls", "a coyote yips and howls", "a wild dog howls"),
        _animal(r"animals/crickets", "crickets chirp", "crickets are chirping", "insects chirp at night"),
        _animal(r"animals/frog", "a frog croaks", "frogs are croaking", "a frog croaks repeatedly"),
        _animal(r"animals/(moose|stag)", "a deer bellows", "a stag roars", "a large animal bellows"),
        _animal(r"animals/wolf", "a wolf howls", "a wolf is howling", "a wolf howls in the distance"),
        _animal(r"farm/donkey", "a donkey brays", "a donkey is braying", "a donkey hee-haws"),
        _animal(r"farm/horse", "a horse neighs", "a horse whinnies", "a horse snorts"),
        _animal(r"farm/ox", "an ox moos", "cattle low", "a cow moos"),
        _animal(r"farm/sheep", "a sheep bleats", "sheep are baaing", "sheep bleat"),
        _animal(r"critters/duck/", "a duck quacks", "ducks are quacking", "a duck quacks several times"),
        R(r"(saw/|sawmill|benchsaw)", "machine", "a saw cuts wood", "wood is being sawn",
          "a saw rasps through wood"),
        R(r"(hammering|smith|toolsmith|geologist_hammer)", "machine",
          "a hammer strikes metal", "a blacksmith hammers", "metal is hammered on an anvil"),
        R(r"(stonecutter|stonemason|stonegrind)", "machine", "stone is chiseled",
          "someone cuts stone", "a chisel chips at stone"),
        R(r"woodcutting/(fast_)?woodcutting", "machine", "an axe chops wood", "someone chops a tree",
          "wood is chopped with an axe"),
        R(r"woodcutting/tree_falling", "impact", "a tree falls", "a tree crashes to the ground",
          "a falling tree cracks and thuds"),
        R(r"mill/mill_turning", "machine", "a mill wheel turns", "wooden machinery creaks",
          "a mill grinds"),
        R(r"(mill/weaving|barbarians/weaver)", "machine", "a loom clacks", "a weaving loom works",
          "wooden machinery clacks"),
        R(r"metal/furnace", "machine", "a furnace roars", "a fire roars in a furnace",
          "a blast furnace burns"),
        R(r"farm/scythe", "machine", "a scythe cuts grass", "grass is being cut",
          "a blade swishes through grass"),
        R(r"music/", "music", "orchestral fantasy music plays", "calm instrumental game music",
          "a gentle orchestral soundtrack"),
    ],
    "wesnoth-1.16-data": [
        R(r"ambient/birds", "nature", "birds sing in a forest", "birds chirp outdoors",
          "a forest with singing birds"),
        R(r"ambient/campfire", "nature", "a campfire crackles", "a fire crackles and pops",
          "wood burns in a fire"),
        R(r"ambient/night", "nature", "insects chirp at night", "a quiet night with crickets",
          "night ambience with chirping"),
        R(r"ambient/morning", "nature", "birds chirp in the morning", "a calm morning outdoors",
          "morning birdsong"),
        R(r"ambient/ship", "nature", "waves lap against a creaking ship", "a wooden ship creaks at sea",
          "water sloshes against a boat"),
        R(r"ambient/wardrums", "drums", "war drums beat", "heavy drums pound steadily",
          "tribal drums are beaten", mode="window"),
        _animal(r"/wolf-(growl|hit|die)", "a wolf growls", "a dog snarls", "a wolf snarls and yelps"),
        _animal(r"/bat-flapping", "bat wings flap", "a bat flaps its wings", "wings flutter"),
        _animal(r"/(horse-canter|horse-elf-canter)", "a horse gallops", "hooves clatter",
                "a horse canters by"),
        _animal(r"/(horse-hit|horse-die)", "a horse neighs", "a horse whinnies in pain", "a horse squeals"),
        _animal(r"/(gryphon-shriek|gryphon-hit|gryphon-die)", "a bird of prey shrieks",
                "a large bird screeches", "a raptor cries"),
        _animal(r"/(hiss|hiss-big|hiss-hit|hiss-die)\.", "a snake hisses", "a hissing reptile",
                "a creature hisses"),
        R(r"/(sword|mace|axe|club|dagger-swish|flail|hatchet|staff|spear)\.", "impact",
          "a weapon swooshes and strikes", "metal weapons clash", "a blade swings and hits"),
        R(r"/(explosion|cave-in|rumble)\.", "impact", "an explosion booms", "rocks collapse with a rumble",
          "a loud boom"),
        R(r"/(gunshot|thunderstick)\.", "machine", "a gunshot", "an old gun fires", "a musket fires"),
        R(r"/(bow|crossbow)\.", "impact", "an arrow is shot", "a bowstring twangs", "an arrow whooshes"),
        R(r"/fire\.", "nature", "a fire whooshes", "flames burst", "a burst of fire", mode="oneshot"),
        R(r"/(human-die|human-hit|human-old-die|human-old-hit|dwarf-hit|dwarf-die|orc-hit|orc-die)",
          "speech", "a man grunts in pain", "a man groans", "a man cries out", mode="oneshot"),
        R(r"/(human-female-die|human-female-hit)", "speech", "a woman cries out", "a woman screams in pain",
          "a woman groans", mode="oneshot"),
        R(r"/(dwarf-laugh)", "speech", "a man laughs", "a man is laughing heartily", "deep laughter",
          mode="oneshot"),
        R(r"/(bell|chat|receive|timer)\.", "notification", "a short chime", "a notification sound",
          "a bell dings"),
        R(r"/horn-signals/horn", "notification", "a horn signal sounds", "a hunting horn is blown",
          "a horn blows a call"),
    ],
    "wesnoth-1.16-music": [
        R(r"music/(battle|battle-epic|frantic|vengeful|siege|casualties|weight_of_revenge|"
          r"the_dangerous_symphony|legends)", "music", "dramatic orchestral battle music",
          "an intense orchestral piece plays", "epic orchestral music with drums"),
        R(r"music/(sad|love_theme|nunc_dimittis|transience|the_king_is_dead|defeat)", "music",
          "sad slow orchestral music", "a melancholic orchestral piece",
          "slow emotional music with strings"),
        R(r"music/", "music", "orchestral fantasy music plays", "instrumental music from a video game",
          "a calm orchestral soundtrack"),
    ],
    "supertuxkart-data": [
        _animal(r"/(exotic-birds)", "exotic birds call", "tropical birds chirp and squawk",
                "birds sing in a jungle"),
        _animal(r"/(cow)\.", "a cow moos", "a cow is mooing", "cattle moo"),
        _animal(r"/(sheep)\.", "a sheep bleats", "sheep are baaing", "sheep bleat"),
        R(r"/(rain)\.", "nature", "rain falls", "steady rain is falling", "the sound of rain"),
        R(r"/(river_loop)\.", "nature", "a river flows", "water runs in a stream", "a babbling brook"),
        R(r"/(waterfall_loop)", "nature", "a waterfall roars", "water rushes down a waterfall",
          "loud rushing water"),
        R(r"/(thunder)\.", "nature", "thunder rumbles", "a thunderclap", "thunder roars in the distance",
          mode="oneshot"),
        R(r"/(engine_large|engine_small|car_accel|car_revup)\.", "machine", "a car engine revs",
          "an engine accelerates", "a motor runs", mode="window"),
        R(r"/(airplane_jetengine)\.", "machine", "a jet engine roars", "a jet plane flies by",
          "a jet engine hums"),
        R(r"/(steamlocomotive)\.", "machine", "a steam train chugs", "a steam locomotive passes",
          "a steam engine puffs"),
        R(r"/(spaceship|spaceship_engine|spaceship_engine_short|machine_sound)\.", "machine",
          "a machine hums", "an engine drones", "a low mechanical hum"),
        R(r"/(skid)\.", "machine", "tires screech", "a car skids", "tyres squeal"),
        R(r"/(horn)\.", "machine", "a car horn honks", "a vehicle honks", "a horn beeps"),
        R(r"/(crash|break|metal_clang|anvil|strike|bowling_roll|ball_bounce)\.", "impact",
          "something crashes", "a metallic crash", "objects collide"),
        R(r"/(explosion|bubblegum_explode)\.", "impact", "an explosion booms", "something explodes",
          "a loud bang"),
        R(r"/(fireworks_show)\.", "impact", "fireworks explode", "fireworks pop and crackle",
          "a fireworks display", mode="window"),
        R(r"/(clock)\.", "machine", "a clock ticks", "a clock is ticking", "ticking"),
        R(r"/(wooden_bridge)\.", "impact", "a wooden bridge creaks", "planks rattle",
          "wood creaks and knocks"),
        R(r"/(static-radio)\.", "machine", "radio static crackles", "a radio hisses with static",
          "white noise from a radio"),
        R(r"/(start_race|pre_start_race)\.", "notification", "countdown beeps", "a start signal beeps",
          "electronic beeps count down"),
        R(r"/(goal_scored|race_finish|gp_end|last_lap_fanfare)\.", "notification", "a short fanfare",
          "a jingle plays", "a victory jingle"),
        R(r"data/music/", "music", "upbeat video game music plays", "energetic electronic game music",
          "instrumental racing game music"),
        R(r"tracks/.*(battle_theme|gran_paradiso|beneath_the_rabbit_hole)", "music",
          "upbeat video game music plays", "instrumental game music", "a lively game soundtrack"),
    ],
    "redeclipse-data": [
        R(r"ambience/(blowwind|dizzywind|hollowwind|wastewind|wind|alienwind)\.", "nature",
          "wind blows", "strong wind is howling", "a gusty wind blows"),
        R(r"ambience/morph/(wind|stormwind)\.", "nature", "wind blows", "a stormy wind howls",
          "wind gusts"),
        R(r"ambience/morph/(rain|stormrain)\.", "nature", "rain pours", "heavy rain falls",
          "a rainstorm"),
        R(r"ambience/morph/stormbolts", "nature", "thunder rumbles during a storm", "a thunderstorm",
          "thunder cracks"),
        R(r"ambience/(creek|river|water)\.", "nature", "a stream flows", "water trickles",
          "a creek babbles"),
        R(r"ambience/waterfall", "nature", "a waterfall roars", "water crashes down",
          "rushing water"),
        R(r"ambience/cavedrip", "nature", "water drips in a cave", "drops fall in a cave",
          "dripping water echoes"),
        R(r"ambience/(forest|cycadas)\.", "nature", "a forest with birds and insects",
          "cicadas buzz in a forest", "outdoor forest ambience"),
        R(r"ambience/nightcrickets", "nature", "crickets chirp at night", "night insects chirp",
          "crickets are chirping"),
        R(r"ambience/(fire|lava|lavarumble)\.", "nature", "a fire roars", "flames crackle",
          "a deep rumbling fire"),
        R(r"ambience/(distant_cars)\.", "machine", "distant traffic", "cars pass in the distance",
          "traffic hums"),
        R(r"ambience/(machine|morph/machine|hum|pneumatic)\.", "machine", "a machine hums",
          "industrial machinery runs", "a constant mechanical hum"),
        R(r"player/(footstep|concstep)", "impact", "footsteps", "someone walks", "steps on a hard floor",
          mode="walk"),
        R(r"announcer/", "speech", "an announcer speaks", "a male announcer says short phrases",
          "a deep voice announces", mode="oneshot"),
        R(r"weapons/(pistol|rifle|smg|shotgun)/primary", "machine", "a gun fires", "gunshots ring out",
          "a firearm shoots"),
        R(r"weapons/(\w+/)?reload", "machine", "a gun is reloaded", "a weapon clicks and reloads",
          "metallic reloading clicks"),
        R(r"weapons/(explode|rocket/primary|mine/explode|rifle/explode|shotgun/explode)", "impact",
          "an explosion", "something blows up", "a loud blast"),
        R(r"sfx/(splashin|splashout|splosh)", "nature", "water splashes", "a splash", "someone splashes",
          mode="oneshot"),
        R(r"sfx/(alarm)\.", "notification", "an alarm sounds", "an alarm blares", "a warning alarm"),
        R(r"music/", "music", "electronic music plays", "an energetic electronic track",
          "techno game music"),
        R(r"sounds/theme", "music", "electronic music plays", "an electronic theme tune",
          "synthesizer music"),
    ],
    "lincity-ng-data": [
        R(r"sounds/(fire|firewasteland)\.", "nature", "a fire crackles", "flames roar", "a blaze burns"),
        R(r"sounds/(water|parklandlake)\.", "nature", "water laps gently", "water splashes softly",
          "a lake with gentle waves"),
        R(r"sounds/(green|parklandplane)\.", "nature", "birds sing in a park", "a peaceful park",
          "birds chirp outdoors"),
        R(r"sounds/(farm|organicfarm)\.", "animal", "farm animals make noises",
          "animals on a farm", "a farmyard with animals"),
        R(r"sounds/(coalmine|oremine|industryhigh|industrylight|blacksmith|mill|pottery|recycle)\.",
          "machine", "industrial machinery runs", "factory machines operate", "a workshop with machines"),
        R(r"sounds/(trafichigh|traficlow|dirttrack)\.", "machine", "traffic passes", "cars drive by",
          "street traffic"),
        R(r"sounds/(railtrain)\.", "machine", "a train passes", "a train rolls along the tracks",
          "a passing train"),
        R(r"sounds/(rockettakeoff|rocket)\.", "machine", "a rocket launches", "a rocket engine roars",
          "a rocket lifts off"),
        R(r"sounds/(rocketexplosion|raze)\.", "impact", "an explosion", "a building is demolished",
          "a loud blast"),
        R(r"sounds/(windmill|windmillhtech)\.", "machine", "a windmill turns", "wind turbine blades whoosh",
          "a windmill creaks"),
        R(r"sounds/(sportscroud)\.", "speech", "a crowd cheers", "a stadium crowd", "people cheer",
          mode="oneshot"),
        R(r"music/", "music", "calm instrumental music", "relaxed electronic music", "a mellow tune"),
    ],
    "minetest-data": [
        R(r"default_(dirt|grass|gravel|hard|sand|snow|wood|metal|ice|glass|water)_footstep",
          "impact", "footsteps", "someone walks", "a person walks at a steady pace", mode="walk"),
        R(r"doors_(door|glass_door|steel_door|fencegate)_(open|close)", "impact", "a door opens and closes",
          "a door creaks", "someone opens a door"),
        R(r"xpanes_steel_bar_door", "impact", "a metal gate clanks", "a steel door slams",
          "a metal door closes"),
        R(r"default_chest_(open|close)", "impact", "a wooden chest opens", "a lid creaks",
          "a box is opened"),
        R(r"default_break_glass", "impact", "glass breaks", "glass shatters", "a window smashes"),
        R(r"tnt_explode", "impact", "an explosion", "dynamite explodes", "a loud blast"),
        R(r"default_dig_(choppy|cracky|crumbly)", "impact", "someone digs", "a tool hits the ground",
          "digging sounds"),
        R(r"env_sounds_water", "nature", "water flows", "a stream runs", "running water", mode="window"),
        R(r"env_sounds_lava", "nature", "lava bubbles", "a thick liquid bubbles", "bubbling"),
        R(r"fire_(fire|large|small)", "nature", "a fire crackles", "flames crackle", "a fire burns",
          mode="window"),
        R(r"carts_cart_moving", "machine", "a cart rolls on rails", "a mine cart rattles",
          "wheels rumble on a track"),
        R(r"default_furnace_active", "machine", "a furnace burns", "a furnace roars", "a stove burns"),
    ],
    "wordwarvi-sound": [
        R(r"/(big_explosion|bombexplosion|missile_explosion|synthetic_bomb|gravity_bomb)", "impact",
          "an explosion booms", "a bomb explodes", "a loud blast"),
        R(r"/(clang|metalbang|stonebang|new_ground_smack|bodyslam)", "impact", "a metal clang",
          "something heavy hits the ground", "a loud bang"),
        R(r"/(flak_gun_sound|synthetic_gunshot|gunwheel_sound)", "machine", "guns fire",
          "a gun shoots repeatedly", "gunfire"),
        R(r"/(missile_alarm)", "notification", "an alarm beeps", "a warning alarm sounds",
          "a beeping alert"),
        R(r"/(rocket_exhaust|jetwash|missile_launch)", "machine", "a rocket engine roars",
          "a jet blasts", "a rocket whooshes"),
        R(r"/(toyota_celica_cardoor_sample)", "impact", "a car door slams", "a car door closes",
          "a door thuds shut"),
        R(r"/(volcano_eruption)", "nature", "a volcano rumbles", "a deep rumbling eruption",
          "an eruption roars"),
        R(r"/(synthetic_thunder_short)", "nature", "thunder rumbles", "a thunderclap", "thunder"),
        R(r"/(hohoho|hohoho_merry_xmas|yay_santa|woohoo)", "speech", "a man laughs and shouts",
          "a jolly man says ho ho ho", "a man cheers", mode="oneshot"),
        R(r"/(aaaah_it_burns|fallingscreamhi|ow_my_spine|ooooof|help_down_here|help_up_here)",
          "speech", "a man screams", "a man yells for help", "a man cries out", mode="oneshot"),
    ],
    "bucklespring-data": [
        # keys 0x10-0x19 are left out (CORPUS.md)
        R(r"buckle/wav/(0[0-9a-f]|1[a-f]|[2-9a-f][0-9a-f])-[01]\.wav$", "keyboard",
          "someone types on a mechanical keyboard", "keys clack on a computer keyboard",
          "fast typing on a keyboard", "a person is typing"),
    ],
    "tuxpaint-data": [
        R(r"/(keyclick)\.", "keyboard", "someone types on a keyboard", "key clicks",
          "a person is typing"),
        R(r"/(typewriterbell)\.", "notification", "a typewriter bell dings", "a small bell rings",
          "a bell dings once"),
        R(r"/(harp)\.", "instrument", "a harp glissando", "harp strings ring", "a harp is plucked"),
        R(r"/(bubble)\.", "nature", "bubbles pop", "water bubbles", "bubbling water"),
        R(r"/(giggle)\.", "speech", "a child giggles", "a child laughs", "giggling", mode="oneshot"),
        R(r"/(eraser|paint|fill)\.", "impact", "a brush swishes", "a soft rubbing sound",
          "something is wiped"),
    ],
    "oxygen-sounds": [
        R(r"oxygen-im-phone-ring", "notification", "a phone rings", "a telephone ringtone",
          "a phone is ringing"),
        R(r"oxygen-(im|sys|k3b)-", "notification", "a computer notification chime",
          "a short electronic alert sound", "a desktop notification plays", "a soft chime"),
        R(r"oxygen-window-", "notification", "a soft interface sound", "a short whoosh from a computer",
          "a subtle computer sound effect"),
    ],
    "yaru-theme-sound": [
        R(r"/(bell|complete|message|message-new-instant|service-login|device-added|device-removed|"
          r"dialog-warning|dialog-error|dialog-information|system-ready|desktop-login|desktop-logoff|"
          r"battery-low|power-plug|power-unplug|audio-volume-change|window-attention|"
          r"screen-capture|trash-empty|bell)", "notification", "a computer notification chime",
          "a short electronic alert sound", "a desktop notification plays", "a gentle ding"),
    ],
    "deepin-sound-theme": [
        R(r"/(camera-shutter|screen-capture)\.", "machine", "a camera shutter clicks",
          "a camera takes a picture", "a shutter click"),
        R(r"/(trash-empty)\.", "impact", "paper is crumpled", "trash is emptied", "rustling paper"),
        R(r"stereo/", "notification", "a computer notification chime", "a short electronic alert sound",
          "a desktop notification plays", "a soft chime"),
    ],
    "sound-icons": [
        R(r"/(piano|electric-piano|klavichord|cembalo)", "instrument", "a keyboard instrument plays a note",
          "a piano note", "a short piano phrase"),
        R(r"/(guitar)", "instrument", "a guitar note", "a guitar is plucked", "a short guitar phrase"),
        R(r"/(trumpet)", "instrument", "a trumpet note", "a short trumpet call", "a trumpet plays"),
        R(r"/(violoncello)", "instrument", "a cello note", "a bowed cello", "a short cello phrase"),
        R(r"/(xylofon)", "instrument", "a xylophone note", "a xylophone is struck", "xylophone"),
        R(r"/(canary-long)", "animal", "a canary sings", "a small bird sings", "a bird chirps"),
        R(r"/(glass-water)", "impact", "a glass clinks", "a glass is struck", "glass rings"),
        R(r"/(prompt|chord|pisk-up|pisk-down)", "notification", "a short electronic alert",
          "a computer beep", "a short notification sound"),
    ],
    "linphone-common": [
        R(r"rings/oldphone", "notification", "an old telephone rings", "a phone is ringing",
          "a classic telephone bell rings"),
        R(r"/(ringback)\.", "notification", "a phone ringback tone", "a ringing tone on a phone line",
          "a telephone line rings"),
        R(r"/(incoming_chat)\.", "notification", "a chat message notification", "a short alert chime",
          "a notification sound"),
    ],
    # drum one-shots, sequenced into patterns (build_corpus.py's drumkit mode); see drum_role()
    "hydrogen-data": [],
    "hydrogen-drumkits": [],
}

# Sources that are used whole rather than file by file.
GENERATED_SOURCES = {
    "fluid-soundfont-gm": "soundfont",
    "timgm6mb-soundfont": "soundfont",
    "musescore-general-soundfont-small": "soundfont",
    "avldrums.lv2-soundfont": "soundfont",
    "hydrogen-data": "drum one-shots",
    "hydrogen-drumkits": "drum one-shots",
    "espeak-ng": "speech synthesizer",
}

DRUM_ROLES = {  # role -> file-name pattern (lower case) in hydrogen kits
    "kick": r"(kick|bd|bass ?drum|bassdrum)",
    "snare": r"(snare|sd)(?!.*(rim|stick))",
    "hat": r"(hat ?closed|closed ?hat|hh ?closed|chh|hihat|hi-hat|hat)(?!.*open)",
}


def drum_role(path: str) -> str | None:
    """The drum-kit role ("kick", "snare", "hat") of a hydrogen sample, from its file name."""
    name = path.lower().rsplit("/", 1)[-1]
    for role, pattern in DRUM_ROLES.items():
        if re.search(pattern, name):
            return role
    return None


@dataclass(frozen=True)
class Match:
    rule: Rule
    fields: dict

    @property
    def category(self) -> str:
        return self.rule.category

    def caption(self, rng) -> str:
        return self.rule.captions[rng.integers(len(self.rule.captions))].format(**self.fields)

    def captions(self) -> list[str]:
        return [c.format(**self.fields) for c in self.rule.captions]


_COMPILED: dict[str, list[tuple[re.Pattern, Rule]]] = {}


def match(package: str, path: str) -> Match | None:
    """The first rule of `package`'s map that matches `path` (lower-cased), or None (drop the file)."""
    if package not in _COMPILED:
        _COMPILED[package] = [(re.compile(r.pattern), r) for r in CAPTION_MAPS.get(package, [])]
    low = path.lower()
    for regex, rule in _COMPILED[package]:
        m = regex.search(low)
        if m:
            fields = {}
            lang = m.groupdict().get("lang")
            if lang is not None:
                fields["lang"] = LANGUAGES[lang]
            return Match(rule, fields)
    return None
