"""Random container names like Docker's: ``adjective_surname`` (``eager_turing``)."""

from __future__ import annotations

import random

LEFT = (
    "admiring adoring affectionate agitated amazing angry awesome blissful bold boring brave busy charming "
    "clever cool compassionate competent condescending confident cranky crazy dazzling determined distracted "
    "dreamy eager ecstatic elastic elated elegant eloquent epic fervent festive flamboyant focused friendly "
    "frosty gallant gifted goofy gracious happy hardcore heuristic hopeful hungry infallible inspiring "
    "jolly jovial keen kind laughing loving lucid magical modest musing mystifying naughty nervous nice "
    "nifty nostalgic objective optimistic peaceful pedantic pensive practical priceless quirky quizzical "
    "relaxed reverent romantic sad serene sharp silly sleepy stoic strange stupefied suspicious sweet "
    "tender thirsty trusting unruffled upbeat vibrant vigilant vigorous wizardly wonderful xenodochial "
    "youthful zealous zen"
).split()
RIGHT = (
    "albattani allen almeida agnesi archimedes ardinghelli aryabhata austin babbage banach bardeen bartik "
    "bassi bell benz bhabha bhaskara blackwell bohr booth borg bose boyd brahmagupta brattain brown carson "
    "chandrasekhar chatelet chaum cohen colden cori cray curie darwin davinci diffie dijkstra dubinsky "
    "easley edison einstein elion engelbart euclid euler fermat fermi feynman franklin gagarin galileo "
    "gates gauss germain goldberg goldstine goldwasser golick goodall hamilton hawking heisenberg hermann "
    "hodgkin hofstadter hoover hopper hugle hypatia jackson jang jennings jepsen johnson joliot jones "
    "kalam kare keller kepler khorana kilby kirch knuth kowalevski lalande lamarr lamport leakey leavitt "
    "lewin lichterman liskov lovelace lumiere mahavira mayer mccarthy mcclintock mclean mcnulty meitner "
    "mendel merkle mestorf mirzakhani montalcini moore morse moser murdock napier nash neumann newton "
    "nightingale nobel noether northcutt noyce panini pare pasteur payne perlman pike poincare poitras "
    "ptolemy raman ramanujan ride ritchie rosalind roentgen rubin saha sammet sanderson shamir shannon "
    "shaw shirley shockley sinoussi snyder spence stonebraker sutherland swanson swartz swirles taussig "
    "tesla tharp thompson torvalds tu turing varahamihira vaughan visvesvaraya volhard wescoff wiles "
    "williams wilson wing wozniak wright wu yalow yonath zhukovsky"
).split()


def random_name(taken: set[str]) -> str:
    rng = random.SystemRandom()
    for attempt in range(100):
        name = f"{rng.choice(LEFT)}_{rng.choice(RIGHT)}"
        if attempt > 10:
            name += str(rng.randint(0, 9))
        if name not in taken and name != "boring_wozniak":  # Docker's one exclusion
            return name
    raise RuntimeError("random_name: no free name after 100 tries")
